"""Hot reload of a real `turnout serve` process: on file change and on SIGHUP; bad files are rejected
and the old config keeps serving; requests in flight during a reload complete."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import base_config
from tests.process import turnout_process
from turnout.testing import free_port


class Served:
    def __init__(self, path: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = path.with_suffix(".log")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "turnout.cli", "serve", "--config", str(path), "--port", str(self.port), *args],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(self.log.read_text())
            time.sleep(0.1)

    def generation(self) -> int:
        return httpx.get(self.url + "/readyz").json()["generation"]

    def wait_generation(self, n: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while self.generation() != n:
            assert time.monotonic() < deadline, f"generation stayed {self.generation()}:\n{self.log.read_text()}"
            time.sleep(0.05)

    def routed_model(self) -> str:
        response = httpx.post(self.url + "/v1/route", json={"model": "auto", "messages": [{"role": "user",
                                                                                             "content": "hi"}]})
        return response.json()["model"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def config_file(tmp_path, upstream):
    path = tmp_path / "turnout.yaml"
    path.write_text(yaml.safe_dump(base_config(upstream.url)))
    return path


def with_default(config: dict, model: str) -> str:
    config["decisions"][-1]["models"] = [model]
    return yaml.safe_dump(config)


def test_reload_on_file_change_good_then_bad(config_file, upstream):
    served = Served(config_file)
    try:
        assert served.routed_model() == "small"
        config_file.write_text(with_default(base_config(upstream.url), "strong"))
        served.wait_generation(2)
        assert served.routed_model() == "strong"

        config_file.write_text(with_default(base_config(upstream.url), "no-such-model"))
        time.sleep(1.5)  # the watcher sees it, rejects it, and keeps serving generation 2
        assert served.generation() == 2 and served.routed_model() == "strong"
        config_file.write_text("models: [unclosed")
        time.sleep(1.5)
        assert served.generation() == 2 and served.routed_model() == "strong"
        log = served.log.read_text()
        assert "decisions[1].models[0]: unknown model 'no-such-model'" in log
        assert "invalid YAML" in log
    finally:
        served.stop()


def test_reload_on_sighup_only_when_not_watching(config_file, upstream):
    served = Served(config_file, "--no-watch")
    try:
        config_file.write_text(with_default(base_config(upstream.url), "strong"))
        time.sleep(1.0)
        assert served.generation() == 1 and served.routed_model() == "small"
        os.kill(served.proc.pid, signal.SIGHUP)
        served.wait_generation(2)
        assert served.routed_model() == "strong"
    finally:
        served.stop()


def test_requests_in_flight_survive_a_reload(config_file, upstream):
    served = Served(config_file)
    results: dict[str, object] = {}

    def slow_call() -> None:
        results["plain"] = httpx.post(served.url + "/v1/chat/completions", timeout=30, json={
            "model": "auto", "messages": [{"role": "user", "content": "slow #sleep:1.5"}]})

    def slow_stream() -> None:
        with httpx.stream("POST", served.url + "/v1/chat/completions", timeout=30, json={
                "model": "auto", "stream": True,
                "messages": [{"role": "user", "content": "a b c d e f #trickle:0.25"}]}) as response:
            results["stream"] = [line for line in response.iter_lines() if line.startswith("data: ")]

    try:
        threads = [threading.Thread(target=slow_call), threading.Thread(target=slow_stream)]
        for t in threads:
            t.start()
        time.sleep(0.4)
        config_file.write_text(with_default(base_config(upstream.url), "strong"))
        served.wait_generation(2)
        for t in threads:
            t.join(30)
        plain = results["plain"]
        assert plain.status_code == 200 and plain.json()["choices"][0]["message"]["content"] == "echo: slow #sleep:1.5"
        assert plain.headers["x-turnout-model"] == "small"  # routed by the config it started under
        assert results["stream"][-1] == "data: [DONE]" and len(results["stream"]) > 8
        assert served.routed_model() == "strong"
    finally:
        served.stop()


def test_several_workers_serve_and_reload(config_file, upstream):
    served = Served(config_file, "--workers", "2")
    try:
        for _ in range(10):
            response = httpx.post(served.url + "/v1/chat/completions", timeout=30, json={
                "model": "auto", "messages": [{"role": "user", "content": "hi"}]})
            assert response.status_code == 200 and response.headers["x-turnout-model"] == "small"
        config_file.write_text(with_default(base_config(upstream.url), "strong"))
        deadline = time.monotonic() + 15
        while {served.routed_model() for _ in range(8)} != {"strong"}:  # every worker reloads on its own
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        served.stop()


def wait_for(predicate, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def readyz(server) -> dict:
    return httpx.get(server.url + "/readyz").json()


def test_watcher_ignores_a_log_file_beside_the_config(tmp_path, upstream):
    """Issue 12: with the log in the config's folder, the folder watch woke at every log line and watchfiles
    logged "1 change detected" into that log, ten times a second for good. The config file itself is watched."""
    with turnout_process(base_config(upstream.url), tmp_path, log_level="info", watch=True) as server:
        assert server.log_path.parent == server.config_path.parent
        # the log file grows while the server runs: write to it as a busy server would
        for i in range(20):
            httpx.post(server.url + "/v1/chat/completions", timeout=30,
                       json={"model": "auto", "messages": [{"role": "user", "content": f"hi {i}"}]})
            time.sleep(0.05)
        time.sleep(1.0)  # the old watcher, fed by its own lines, would have logged several times by now
        assert readyz(server)["generation"] == 1
        assert "change detected" not in server.log() and "changes detected" not in server.log()
        server.config_path.write_text(with_default(base_config(upstream.url), "strong"))
        wait_for(lambda: readyz(server)["generation"] == 2, f"no reload:\n{server.log()}")
        assert "change detected" not in server.log()
        assert "reload (file changed): now serving generation 2" in server.log()


def test_watcher_follows_an_atomic_save_and_the_key_file(tmp_path, upstream):
    """Editors save by writing a new file and renaming it over the old one; the watch must follow the new file
    (a watch on the old inode sees nothing more). The key file the config names is watched as well."""
    from turnout.access import digest

    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump([{"name": "a", "key_sha256": digest("sk-a-0123456789")}]))
    config = base_config(upstream.url)
    config["auth"] = {"key_file": "keys.yaml"}
    with turnout_process(config, tmp_path, watch=True) as server:
        replacement = tmp_path / "next.yaml"
        config["decisions"][-1]["models"] = ["strong"]
        replacement.write_text(yaml.safe_dump(config))
        os.replace(replacement, server.config_path)
        wait_for(lambda: readyz(server)["generation"] == 2, f"atomic save not seen:\n{server.log()}")
        config["decisions"][-1]["models"] = ["small"]
        server.config_path.write_text(yaml.safe_dump(config))  # in place, after the replace
        wait_for(lambda: readyz(server)["generation"] == 3, f"write after a replace not seen:\n{server.log()}")

        def chat(key: str) -> int:
            return httpx.post(server.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                              json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
                              timeout=30).status_code

        assert chat("sk-a-0123456789") == 200 and chat("sk-b-0123456789") == 401
        keys.write_text(yaml.safe_dump([{"name": "a", "key_sha256": digest("sk-a-0123456789")},
                                        {"name": "b", "key_sha256": digest("sk-b-0123456789")}]))
        wait_for(lambda: readyz(server)["generation"] == 4, f"key file change not seen:\n{server.log()}")
        assert chat("sk-b-0123456789") == 200


def test_settings_read_at_start_warn_on_reload(tmp_path, upstream):
    """Issue 12: a changed server.port was accepted and silently ignored. The reload applies the rest and says,
    naming the field, that it needs a restart."""
    with turnout_process(base_config(upstream.url), tmp_path) as server:
        config = base_config(upstream.url)
        config["server"].update(port=server.port + 1, host="127.0.0.2")
        config["decisions"][-1]["models"] = ["strong"]
        server.config_path.write_text(yaml.safe_dump(config))
        server.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: readyz(server)["generation"] == 2, f"no reload:\n{server.log()}")
        log = server.log()
        assert ("WARNING turnout.reload reload (SIGHUP): server.port changed in the file but is read only at start"
                in log)
        assert "server.host changed in the file" in log
        assert "server.log_format" not in log  # unchanged fields are not named
        response = httpx.post(server.url + "/v1/route", json={"model": "auto", "messages": [{"role": "user",
                                                                                          "content": "hi"}]})
        assert response.json()["model"] == "strong"  # the rest of the reload applied, on the old port


def test_every_restart_only_setting_is_a_config_field():
    from turnout.config import Config
    from turnout.server.holder import RESTART_ONLY

    for dotted in RESTART_ONLY:
        section, name = dotted.split(".")
        assert name in Config.model_fields[section].annotation.model_fields, dotted


def test_server_log_level_is_applied_in_every_worker(config_file, upstream):
    """server.log_level was accepted and ignored (serve logged at info unless --log-level said otherwise), and
    --workers N started its workers at info whatever the level. A reload's INFO line shows a worker's level (at
    info it is there: test_watcher_ignores_a_log_file_beside_the_config)."""
    config = base_config(upstream.url)
    config["server"]["log_level"] = "warning"
    config_file.write_text(yaml.safe_dump(config))
    served = Served(config_file, "--workers", "2")
    try:
        config["decisions"][-1]["models"] = ["strong"]
        config_file.write_text(yaml.safe_dump(config))
        wait_for(lambda: {served.routed_model() for _ in range(8)} == {"strong"},
                 f"no reload:\n{served.log.read_text()}", timeout=30)
        log = served.log.read_text()
        assert "now serving generation 2" not in log and " INFO " not in log, log
    finally:
        served.stop()


def test_a_worker_started_while_the_file_is_rejected_serves_the_last_accepted_one(config_file, upstream):
    """With --workers N uvicorn starts a dead worker anew, and the new one read the file on disk: a rejected file
    made it fail at start again and again (a traceback every half second) while /readyz of the others said all
    was well. It serves the last file a worker accepted, and /readyz says the file on disk is rejected."""
    import re

    served = Served(config_file, "--no-watch", "--workers", "2")

    def workers() -> list[int]:  # started and not (yet) reported dead: uvicorn restarts a worker slow to answer
        log = served.log.read_text()
        dead = set(re.findall(r"Child process \[(\d+)\] died", log))
        return [int(p) for p in re.findall(r"Started server process \[(\d+)\]", log) if p not in dead]

    try:
        wait_for(lambda: len(workers()) == 2, f"two workers did not start:\n{served.log.read_text()}", timeout=60)
        pids = workers()
        bad = base_config(upstream.url)
        bad["models"]["small"]["modle"] = "typo"
        config_file.write_text(yaml.safe_dump(bad))
        os.kill(pids[0], signal.SIGKILL)

        def one_says_rejected() -> bool:
            bodies = [httpx.get(served.url + "/readyz", timeout=10).json() for _ in range(6)]
            return any(b["config"] == "rejected" for b in bodies)

        wait_for(one_says_rejected, f"no worker reports the rejected file:\n{served.log.read_text()}", timeout=30)
        for _ in range(6):  # every worker serves, on the last accepted config
            response = httpx.post(served.url + "/v1/chat/completions", timeout=30,
                                  json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
            assert response.status_code == 200 and response.headers["x-turnout-model"] == "small"
        log = served.log.read_text()
        assert "Traceback" not in log and "models.small: unknown key 'modle'" in log
        metrics = httpx.get(served.url + "/metrics", timeout=10).text  # the workers' figures, added up
        assert "\nturnout_config_rejected 1.0\n" in metrics and "\nturnout_config_generation 1.0\n" in metrics
    finally:
        served.stop()


@contextlib.asynccontextmanager
async def watched(path: Path, config: dict, before_watch=None):
    """A RouterHolder loaded from `path` (written from `config`), its watch running; `before_watch` runs between
    the load and the watch's start."""
    from turnout.server.holder import RouterHolder

    path.write_text(yaml.safe_dump(config))
    holder = RouterHolder.from_path(path)
    if before_watch is not None:
        before_watch()
    task = asyncio.create_task(holder.watch())
    try:
        yield holder, task
    finally:
        task.cancel()
        await holder.aclose()


async def reloaded(holder, task, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while holder.generation != 2:
        assert time.monotonic() < deadline and not task.done(), "no reload"
        await asyncio.sleep(0.05)


async def test_watching_that_fails_falls_back_to_looking_at_the_file(tmp_path, upstream, monkeypatch, caplog):
    """Out of inotify watches (or any failure of watchfiles): the watch task used to die silently and reloads
    on change stopped for good. It says so once and compares the files' stat every second instead."""
    import watchfiles

    def out_of_watches(*args, **kwargs):
        raise OSError(28, "inotify watch limit reached")

    monkeypatch.setattr(watchfiles, "awatch", out_of_watches)
    path = tmp_path / "turnout.yaml"
    async with watched(path, base_config(upstream.url)) as (holder, task):
        await asyncio.sleep(1.5)
        path.write_text(with_default(base_config(upstream.url), "strong"))
        await reloaded(holder, task)
        assert holder.router.decisions["default"].config.models == ["strong"]
        assert [r.message for r in caplog.records if "watching" in r.message] == [
            f"watching {path} failed (OSError); looking at it every 1s instead"]


async def test_a_write_between_loading_and_watching_is_picked_up(tmp_path, upstream):
    """CI caught it: with --workers 2 a worker that read the file, then had the file rewritten before its watch
    began, took the file as it was at the watch's start for the one it serves and never reloaded."""
    path = tmp_path / "turnout.yaml"
    rewrite = lambda: path.write_text(with_default(base_config(upstream.url), "strong"))  # noqa: E731
    async with watched(path, base_config(upstream.url), before_watch=rewrite) as (holder, task):
        await reloaded(holder, task)
        assert holder.router.decisions["default"].config.models == ["strong"]


async def test_a_write_the_watch_raised_no_event_for_is_picked_up(tmp_path, upstream, monkeypatch):
    """A write that lands after the stat check but before the watch is in place raises no event; the watch
    looks at the files' stat once a second as well."""
    import watchfiles

    async def deaf(*paths, rust_timeout=None, yield_on_timeout=False, **kwargs):  # a watch that never sees it
        while True:
            await asyncio.sleep((rust_timeout or 5000) / 1000)
            if yield_on_timeout:
                yield set()

    monkeypatch.setattr(watchfiles, "awatch", deaf)
    path = tmp_path / "turnout.yaml"
    async with watched(path, base_config(upstream.url)) as (holder, task):
        await asyncio.sleep(0.3)
        path.write_text(with_default(base_config(upstream.url), "strong"))
        await reloaded(holder, task)
