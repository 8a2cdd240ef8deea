"""turnout.cpu: `off_gil` runs a step in a worker process once the pool is up, in a thread before that and
without one, survives a worker that dies, and raises what the step raises."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import pytest

from turnout import cpu


def pid(_: object = None) -> int:
    return os.getpid()


def fail(message: str) -> None:
    raise ValueError(message)


@pytest.fixture
def processes() -> Iterator[None]:
    cpu.configure(1)
    yield
    cpu.configure(0)


async def worker_pid(timeout: float = 60.0) -> int:
    """The pid a call reports once it runs in a worker process (the first calls run in a thread while the pool
    starts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await cpu.off_gil(pid)
        if found != os.getpid():
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("no worker process started")


async def test_without_worker_processes_a_step_runs_in_this_process() -> None:
    cpu.configure(0)
    assert await cpu.off_gil(pid) == os.getpid()
    assert await cpu.off_loop(pid) == os.getpid()


async def test_the_first_calls_run_in_a_thread_then_in_a_worker_process(processes) -> None:
    assert await cpu.off_gil(pid) == os.getpid()  # the pool is only starting: no call waits for it
    worker = await worker_pid()
    assert worker != os.getpid()
    assert {await cpu.off_gil(pid) for _ in range(5)} == {worker}


async def test_a_step_that_raises_raises_its_error_here(processes) -> None:
    await worker_pid()
    with pytest.raises(ValueError, match="bad input"):
        await cpu.off_gil(fail, "bad input")
    assert await cpu.off_gil(pid) != os.getpid()  # the worker is still serving


async def test_a_killed_worker_is_replaced_and_no_call_fails(processes) -> None:
    first = await worker_pid()
    os.kill(first, signal.SIGKILL)
    answers = [await cpu.off_gil(pid) for _ in range(3)]  # a thread while the pool is found broken and restarted
    assert all(isinstance(a, int) for a in answers)
    second = await worker_pid()
    assert second not in (first, os.getpid())


async def test_configuring_no_processes_stops_the_pool(processes) -> None:
    worker = await worker_pid()
    cpu.configure(0)
    assert await cpu.off_gil(pid) == os.getpid()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # shut down without waiting: it goes within moments
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the worker process outlived the pool")


def test_workers_exit_when_the_server_is_killed(tmp_path) -> None:
    """A server process killed outright (no shutdown) leaves no worker or forkserver behind."""
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "server.py"
    script.write_text(textwrap.dedent("""
        import asyncio, os, sys, time
        from turnout import cpu
        from tests.test_cpu import worker_pid
        async def main():
            cpu.configure(1)
            print(await worker_pid(), flush=True)
            time.sleep(60)
        if __name__ == "__main__":
            asyncio.run(main())
    """))
    server = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        worker = int(server.stdout.readline())
        forkserver = int(open(f"/proc/{worker}/stat").read().rsplit(")", 1)[1].split()[1])
        server.kill()
        server.wait(10)
        deadline = time.monotonic() + 15
        alive = {worker, forkserver}
        while alive and time.monotonic() < deadline:
            alive = {p for p in alive if os.path.exists(f"/proc/{p}") and "Z" not in
                     open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0]}
            time.sleep(0.1)
        assert not alive, f"left behind: {alive}"
    finally:
        server.kill()


async def test_starting_the_pool_never_holds_the_event_loop(processes) -> None:
    """The forkserver's imports take most of a second; the pool starts in a thread of its own meanwhile (a
    liveness bound, not a benchmark: starting it on the loop held the loop for ~0.7 s here)."""
    cpu.configure(0)
    cpu.configure(1)  # a fresh pool: nothing started yet
    gaps: list[float] = []

    async def tick() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    try:
        await asyncio.sleep(0.05)
        assert await cpu.off_gil(pid) == os.getpid()  # answered in a thread at once
        await worker_pid()
    finally:
        ticker.cancel()
    assert max(gaps) < 0.4, f"the event loop stalled for {max(gaps):.3f} s"
