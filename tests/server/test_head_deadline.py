"""The request head's deadline (server.header_timeout_s) on a kept-alive connection: the head of a second request
that never completes is answered 408 and the connection closed, as the first request's would be, while a head
that comes whole is served however long the connection was idle before it (the deadline runs from the head's
first byte). Against a real `turnout serve` process."""

from __future__ import annotations

import socket
import time

from tests.conftest import base_config
from tests.process import read_until_closed, turnout_process

BODY = b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}]}'
REQUEST = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: a\r\ncontent-type: application/json\r\ncontent-length: "
           + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


def _response(s: socket.socket) -> bytes:
    """One whole response with a content-length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"the server closed the connection after {data[:200]!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        chunk = s.recv(65536)
        assert chunk, "the server closed the connection inside a body"
        body += chunk
    return head



def test_a_kept_alive_connections_next_head_has_the_deadline_too(upstream, tmp_path):
    config = base_config(upstream.url)
    config["server"]["header_timeout_s"] = 1
    with turnout_process(config, tmp_path) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as s:
            s.sendall(REQUEST)
            assert _response(s).startswith(b"HTTP/1.1 200")
            time.sleep(1.5)  # idle longer than the head deadline: no head has begun, nothing is due
            s.sendall(REQUEST)
            assert _response(s).startswith(b"HTTP/1.1 200")
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: a\r\n")  # and nothing more
            answer = read_until_closed(s)  # (b"" after the socket's 20 s when no deadline closes it)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
