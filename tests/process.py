"""A real `turnout serve` process on a free loopback port, for tests that attack or restart the server as a
user's deployment would run it (its own process, its own event loop, its log in a file)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from turnout.testing import free_port


def start_turnout(config_path: str | Path, port: int, *extra: str, log_level: str = "warning",
                  watch: bool = False) -> subprocess.Popen:
    """`turnout serve` in its own process; its log goes to a file beside the config (a pipe nobody reads would
    fill up and block the server). Returns once /readyz answers 200. With watch=True it reloads when the config
    file changes (else only on SIGHUP)."""
    log = open(f"{config_path}.{port}.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "turnout.cli", "serve", "--config", str(config_path), "--port",
                             str(port), "--watch" if watch else "--no-watch", "--log-level", log_level, *extra],
                            stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            assert proc.poll() is None, open(log.name, encoding="utf-8", errors="replace").read()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.2)


class TurnoutProcess:
    def __init__(self, proc: subprocess.Popen, port: int, log_path: Path, config_path: Path | None = None) -> None:
        self.proc, self.port, self.log_path, self.config_path = proc, port, log_path, config_path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def turnout_process(config: dict[str, Any], tmp_path: Path, *extra: str, log_level: str = "warning",
                    watch: bool = False) -> Iterator[TurnoutProcess]:
    """`with turnout_process(config_dict, tmp_path) as server: httpx.get(server.url + "/healthz")`"""
    path = tmp_path / f"turnout-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    proc = start_turnout(path, port, *extra, log_level=log_level, watch=watch)
    try:
        yield TurnoutProcess(proc, port, Path(f"{path}.{port}.log"), path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def read_until_closed(s: socket.socket) -> bytes:
    """Everything a raw socket receives until the server closes it (or resets it, or the socket times out)."""
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except (ConnectionResetError, TimeoutError):  # socket.timeout is TimeoutError
        pass
    return out
