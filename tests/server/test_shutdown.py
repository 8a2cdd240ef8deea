"""Graceful shutdown of a real `turnout serve` process: SIGTERM refuses new connections at once, lets a stream
in flight finish, then exits; `server.shutdown_grace_s` bounds the wait."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from tests.conftest import base_config
from tests.process import turnout_process

# uvicorn, its shutdown done, raises the signal it caught again: the process ends "killed by SIGTERM" as the
# supervisor asked, not with an error status
EXITED = (0, -signal.SIGTERM)


def stream_in_thread(url: str, text: str, first_chunk: threading.Event, out: dict) -> threading.Thread:
    def run() -> None:
        lines: list[str] = []
        try:
            body = {"model": "small", "stream": True, "messages": [{"role": "user", "content": text}]}
            with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as response:
                for line in response.iter_lines():
                    if line:  # the blank line after each event
                        lines.append(line)
                    first_chunk.set()
        except httpx.HTTPError as exc:
            out["error"] = exc
        out["lines"] = lines
        first_chunk.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def content(lines: list[str]) -> str:
    import json

    return "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                   for line in lines if line.startswith("data: {") and json.loads(line[6:])["choices"])


def test_sigterm_finishes_the_stream_in_flight_and_refuses_new_connections(upstream, tmp_path):
    words = " ".join(f"w{i}" for i in range(12))
    with turnout_process(base_config(upstream.url), tmp_path) as server:
        first, out = threading.Event(), {}
        thread = stream_in_thread(server.url, f"{words} #trickle:0.15", first, out)
        assert first.wait(10)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.ConnectError):  # the listening socket is closed: refused, not queued
            httpx.get(server.url + "/healthz", timeout=2)
        assert server.proc.poll() is None  # still running: the stream is not done
        thread.join(15)
        assert "error" not in out, out.get("error")
        assert out["lines"][-1] == "data: [DONE]" and content(out["lines"]) == f"echo: {words} #trickle:0.15"
        assert server.proc.wait(10) in EXITED


def test_shutdown_grace_bounds_the_wait(upstream, tmp_path):
    config = base_config(upstream.url)
    config["server"]["shutdown_grace_s"] = 1.0
    words = " ".join(f"w{i}" for i in range(40))
    with turnout_process(config, tmp_path) as server:
        first, out = threading.Event(), {}
        thread = stream_in_thread(server.url, f"{words} #trickle:0.5", first, out)  # 20 s of stream
        assert first.wait(10)
        start = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(15) in EXITED
        assert time.monotonic() - start < 8  # 1 s of grace, the Router's drain, and the exit
        thread.join(5)
        assert out["lines"][-1:] != ["data: [DONE]"]  # cut: it had 20 s to go
