"""Test and benchmark helpers shipped with turnout: mock upstreams that speak the real OpenAI and Anthropic
wire formats, and a way to run any ASGI app on a loopback port. Loopback only, by design."""

from turnout.testing.mock_upstream import create_mock_upstream
from turnout.testing.servers import ServerThread, free_port

__all__ = ["ServerThread", "create_mock_upstream", "free_port"]
