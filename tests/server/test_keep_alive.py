"""How long an idle kept-alive connection stays open (server.keep_alive_s). A server that closes a connection just
as its client reuses it fails that request with no answer at all ("server disconnected without sending a
response"): the client has already sent it. uvicorn's own 5 s makes that race likely behind a load balancer
(whose idle timeout is longer: AWS ALB 60 s) and after any pause of the host longer than the timeout, when the
overdue timer and the client's next request come at once; the default now is 75 s."""

from __future__ import annotations

import socket
import time

import pytest

from tests.conftest import base_config
from tests.server.test_head_deadline import REQUEST, _response
from turnout.config import parse_config


def test_a_connection_idle_longer_than_uvicorns_five_seconds_is_served(turnout):
    with socket.create_connection(("127.0.0.1", turnout.port), timeout=10) as s:
        s.sendall(REQUEST)
        assert _response(s).startswith(b"HTTP/1.1 200")
        time.sleep(5.5)
        s.sendall(REQUEST)  # the same connection
        assert _response(s).startswith(b"HTTP/1.1 200")


def test_an_idle_connection_is_closed_after_keep_alive_s(serve, upstream):
    config = base_config(upstream.url)
    config["server"]["keep_alive_s"] = 0.5
    server = serve(config)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(REQUEST)
        assert _response(s).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert s.recv(1) == b""  # the server closed it
        assert 0.3 < time.monotonic() - started < 5


@pytest.mark.parametrize("value", [0, -1, 3601, "soon"])
def test_a_bad_keep_alive_names_the_field(upstream, value):
    config = base_config(upstream.url)
    config["server"]["keep_alive_s"] = value
    with pytest.raises(Exception, match="server.keep_alive_s"):
        parse_config(config)
