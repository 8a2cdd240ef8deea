"""Attacks on the HTTP layer, each against a real `turnout serve` process: oversized chunked bodies and headers,
slow uploads and heads, JSON nested too deep, clients leaving mid-upload, open redirects, and the endpoints an
operator may close."""

from __future__ import annotations

import hashlib
import socket
import threading
import time

import httpx
import pytest

from tests.conftest import base_config, fresh_minute
from tests.process import read_until_closed, turnout_process

KEY, ADMIN = "sk-hardening-0123456789abcdef", "sk-hardening-admin-0123456789"
CHAT = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def raw_request(port: int, head: bytes, body: bytes = b"", timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(head + body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-send: the answer may still be readable
        return read_until_closed(s)



def test_chunked_bodies_are_counted_while_they_arrive(upstream, tmp_path):
    config = base_config(upstream.url)
    config["server"]["max_body_bytes"] = 1024 * 1024
    with turnout_process(config, tmp_path) as server:
        before = rss_mb(server.proc.pid)

        def chunks():
            block = b"x" * (1024 * 1024)
            for _ in range(150):  # 150 MB, chunked: no content-length to refuse it by
                yield block

        for _ in range(3):
            try:
                r = httpx.post(server.url + "/v1/chat/completions", content=chunks(), timeout=60,
                               headers={"content-type": "application/json"})
                assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
            except httpx.HTTPError:
                pass  # the server closed the connection after its 413, before all of the upload was sent
        grown = rss_mb(server.proc.pid) - before
        assert grown < 60, f"RSS grew by {grown:.0f} MB for three 150 MB uploads with a 1 MB limit"
        assert httpx.post(server.url + "/v1/chat/completions", json=CHAT).status_code == 200


def test_oversized_and_too_many_headers_are_refused_before_auth(upstream, tmp_path):
    config = base_config(upstream.url)
    config["auth"] = {"keys": [{"name": "k", "key": KEY}]}
    with turnout_process(config, tmp_path) as server:
        before = rss_mb(server.proc.pid)
        for _ in range(4):
            head = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: " + b"a" * (32 * 1024 * 1024)
                    + b"\r\n\r\n")
            answer = raw_request(server.port, head)
            assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
            assert b"headers_too_large" in answer
        grown = rss_mb(server.proc.pid) - before
        assert grown < 40, f"RSS grew by {grown:.0f} MB for four 32 MB headers"
        many = b"".join(b"x-h%d: v\r\n" % i for i in range(500))
        answer = raw_request(server.port, b"GET /healthz HTTP/1.1\r\nhost: a\r\n" + many + b"\r\n")
        assert answer.startswith(b"HTTP/1.1 431") and b"too_many_headers" in answer
        assert httpx.get(server.url + "/healthz").status_code == 200


def test_a_head_that_never_completes_is_closed(upstream, tmp_path):
    config = base_config(upstream.url)
    config["server"]["header_timeout_s"] = 1
    with turnout_process(config, tmp_path) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as s:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: a\r\n")  # and nothing more
            answer = read_until_closed(s)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_slow_uploads_hold_no_concurrency_slot_and_time_out(upstream, tmp_path):
    """40 connections of one key with an rpm of 20, each having sent 5 bytes of a 1,000-byte body: 20 are refused
    429 from their headers alone, another tenant is still served (a slot is taken only once a body has arrived),
    and each remaining trickle ends with 408 at server.body_timeout_s."""
    config = base_config(upstream.url)
    config["server"].update(max_concurrent=8, body_timeout_s=3)
    config["auth"] = {"keys": [{"name": "slow", "key": KEY, "rpm": 20},
                               {"name": "other", "key": KEY + "-other"}]}
    with turnout_process(config, tmp_path) as server:
        answers: list[bytes] = []
        fresh_minute()

        def trickle() -> None:
            head = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: a\r\ncontent-type: application/json\r\n"
                    b"authorization: Bearer " + KEY.encode() + b"\r\ncontent-length: 1000\r\n\r\n")
            answers.append(raw_request(server.port, head, b'{"mod', timeout=30))

        threads = [threading.Thread(target=trickle) for _ in range(40)]
        for t in threads:
            t.start()
        time.sleep(1)  # all 40 are connected and waiting for their bodies
        other = httpx.post(server.url + "/v1/chat/completions", json=CHAT,
                           headers={"authorization": f"Bearer {KEY}-other"}, timeout=10)
        assert other.status_code == 200, other.text
        for t in threads:
            t.join(timeout=30)
        statuses = sorted(a[9:12] for a in answers)
        assert statuses == [b"408"] * 20 + [b"429"] * 20, statuses


@pytest.mark.parametrize("depth", [200, 1100, 5000])
def test_json_nested_too_deep_is_a_400(upstream, tmp_path, depth):
    config = base_config(upstream.url)
    with turnout_process(config, tmp_path) as server:
        body = b'{"model":"auto","messages":[{"role":"user","content":"hi"}],"metadata":' + b"[" * depth + \
            b"]" * depth + b"}"
        r = httpx.post(server.url + "/v1/chat/completions", content=body,
                       headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "json_too_deep" and "128 levels" in r.json()["error"]["message"]
        assert "Traceback" not in server.log() and "internal_error" not in server.log()


def test_a_client_leaving_mid_upload_is_one_line_and_a_499(upstream, tmp_path):
    with turnout_process(base_config(upstream.url), tmp_path, log_level="info") as server:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", server.port)) as s:
                s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: a\r\ncontent-type: application/json\r\n"
                          b"content-length: 5000\r\n\r\n" + b'{"model": "auto", ')
                time.sleep(0.3)
        time.sleep(0.5)
        log = server.log()
        assert "Traceback" not in log and "ERROR" not in log, log[-2000:]
        assert log.count("status=499") == 3 and log.count("client_disconnected") == 3, log[-2000:]
        metrics = httpx.get(server.url + "/metrics").text
        assert 'turnout_requests_total{decision="none",model="none",status="499"} 3.0' in metrics


def test_no_redirect_is_built_from_the_host_header(upstream, tmp_path):
    with turnout_process(base_config(upstream.url), tmp_path) as server:
        for method, path in (("POST", "/v1/chat/completions/"), ("GET", "/v1/models/"), ("GET", "/healthz/")):
            r = httpx.request(method, server.url + path, headers={"host": "evil.example"}, json=CHAT)
            assert r.status_code == 404 and "location" not in r.headers, (path, r.status_code, r.headers)
        assert httpx.get(server.url + "/docs").status_code == 404  # its page loaded its scripts from a CDN
        assert httpx.get(server.url + "/openapi.json").json()["openapi"]


def test_open_endpoints_can_be_protected(upstream, tmp_path):
    config = base_config(upstream.url)
    config["auth"] = {"keys": [{"name": "k", "key": KEY}], "admin_key_sha256": hashlib.sha256(ADMIN.encode()).hexdigest(),
                      "protect": ["models", "metrics", "openapi"]}
    with turnout_process(config, tmp_path) as server:
        for path in ("/v1/models", "/metrics", "/openapi.json"):
            r = httpx.get(server.url + path)
            assert r.status_code == 401 and r.json()["error"]["type"], (path, r.text)
            assert httpx.get(server.url + path, headers={"authorization": f"Bearer {ADMIN}"}).status_code == 200
        assert httpx.get(server.url + "/v1/models", headers={"authorization": f"Bearer {KEY}"}).status_code == 200
        assert httpx.get(server.url + "/metrics", headers={"authorization": f"Bearer {KEY}"}).status_code == 401
        assert httpx.get(server.url + "/readyz").status_code == 200  # not listed: open
        assert httpx.get(server.url + "/healthz").status_code == 200  # liveness is always open
