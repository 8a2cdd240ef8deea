"""CPU-heavy steps of long inputs, off the event loop: in a few threads (`off_loop`), or, for the costliest
model work, in worker processes (`off_gil`).

A thread keeps the event loop turning, but a thread running Python holds the GIL, and the loop waits for it at
every switch interval and every return from a system call. With 64 KB prompts scanned in threads (about 34 ms
of the server process's CPU each, 18 of them the injection detector's) beside a stream of short requests, the
long ones fell seconds behind in three runs of five (`benchmarks/burst.py`). A worker process has a GIL of its
own. `off_gil` runs a module-level
function there (its arguments and result are pickled: a text in, a score out) when the server has started the
pool (`server.cpu_processes`, `configure`); else, or while the pool is still starting, or when it broke, the
same call runs in a thread. The function is the same code on the same inputs either way, so its result is too.

The pool is per process (each `--workers` process has its own), started on the first long input rather than
at start-up (a server that never sees one never pays its memory), forked from a forkserver that has imported
`PRELOAD` once."""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

log = logging.getLogger("turnout.cpu")

T = TypeVar("T")
WATCH_S = 0.5  # how often a worker checks that the server is still there
START_TIMEOUT_S = 60.0  # a pool whose workers have not answered by then is given up (threads instead)
PRELOAD = ["turnout.models.injection", "turnout.plugins.pii"]

_threads: ThreadPoolExecutor | None = None
_lock = threading.Lock()
_size = 0  # worker processes wanted; 0: threads only
_generation = 0  # bumped by every stop: a start still under way for an older one throws its pool away
_starting = False
_pool: ProcessPoolExecutor | None = None  # set once its workers have started


def _thread_pool() -> ThreadPoolExecutor:
    # a few threads of its own: a burst of long prompts queues here instead of taking every thread of the
    # default executor (which the encoders and the state stores use too)
    global _threads
    if _threads is None:
        _threads = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="turnout-cpu")
    return _threads


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """Run a CPU-bound step (a scan of a long prompt) in a worker thread, so the event loop keeps serving other
    requests meanwhile. For steps that take more than about a millisecond: a hop costs tens of microseconds."""
    return await asyncio.get_running_loop().run_in_executor(_thread_pool(), fn, *args)


def configure(processes: int) -> None:
    """How many worker processes `off_gil` may use (0: none, every call in a thread). A change stops the pool
    there is; the next long input starts one of the new size."""
    global _size
    with _lock:
        if processes != _size:
            _size = processes
            _stop_locked()


def shutdown(wait: bool = False) -> None:
    """Stop the workers: the server's shutdown. `wait`: until they have exited and the pool's queues are
    released (`turnout serve` ends by its signal's default action, uvicorn re-raising SIGTERM, where no exit
    handler runs: a pool left to those would leave its semaphores to the resource tracker, which warns)."""
    with _lock:
        pool = _detach_locked()
    if pool is not None:
        pool.shutdown(wait=wait, cancel_futures=True)
        if wait:  # the queues' semaphores are unlinked when they are collected: now
            del pool
            gc.collect()


def _stop_locked() -> None:
    pool = _detach_locked()
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


def _detach_locked() -> ProcessPoolExecutor | None:
    """The pool there is, no longer the module's; a start still under way is thrown away when it ends."""
    global _pool, _generation
    pool, _pool = _pool, None
    _generation += 1
    return pool


def _started() -> bool:
    return True


def _watch_server(pid: int) -> None:
    """Each worker's start: exit once the server process `pid` is gone. A worker holds both ends of its own task
    queue's pipe, so a server killed outright (SIGKILL, out of memory) would leave it waiting forever, and with
    it the forkserver, which lives while any worker does."""

    def watch() -> None:
        while True:
            time.sleep(WATCH_S)
            try:
                os.kill(pid, 0)
            except (ProcessLookupError, PermissionError):  # gone (or its pid reused by another user's process)
                os._exit(0)

    threading.Thread(target=watch, name="turnout-server-watch", daemon=True).start()


def _ready_pool() -> ProcessPoolExecutor | None:
    """The pool when its workers are up; else None, after starting one in the background if none is starting
    (starting blocks for the forkserver's imports, most of a second: never on the event loop)."""
    global _starting
    if not _size:
        return None
    with _lock:
        if _pool is None and not _starting and _size:
            _starting = True
            threading.Thread(target=_start, args=(_size, _generation), name="turnout-cpu-start", daemon=True).start()
        return _pool


def _start(size: int, generation: int) -> None:
    """Start a pool of `size` workers and wait for them to answer; keep it unless a stop came meanwhile."""
    global _pool, _size, _starting
    pool = None
    try:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        pool = ProcessPoolExecutor(max_workers=size, mp_context=context, initializer=_watch_server,
                                   initargs=(os.getpid(),))
        # as many tasks as workers, at once: each starts a worker now (a pool starts them on demand, and a later
        # start would be a fork on the event loop's thread)
        for started in [pool.submit(_started) for _ in range(size)]:
            started.result(timeout=START_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - no forkserver here, or no worker could start: threads from now on
        log.warning("worker processes unavailable (%s: %s); long inputs are scanned in threads",
                    type(exc).__name__, exc)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        with _lock:
            _starting = False
            if generation == _generation:
                _size = 0
        return
    with _lock:
        _starting = False
        if generation == _generation and _pool is None:
            _pool = pool
            return
    pool.shutdown(wait=False, cancel_futures=True)  # configured otherwise, or shut down, while it started


async def off_gil(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args)` in a worker process when the pool is up, else in a thread (see the module's doc). `fn`
    must be a module-level function and `args` picklable; an exception it raises is raised here."""
    pool = _ready_pool()
    if pool is not None:
        try:
            return await asyncio.wrap_future(pool.submit(fn, *args))
        except BrokenProcessPool:  # a worker died (killed, out of memory): a new pool on the next call
            log.warning("a worker process died; starting a new pool")
            with _lock:
                if _pool is pool:
                    _stop_locked()
        except RuntimeError as exc:  # shut down by configure()/shutdown() meanwhile: a thread this once
            if "shutdown" not in str(exc):
                raise
    return await off_loop(fn, *args)
