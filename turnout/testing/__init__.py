"""Test and benchmark helpers shipped with turnout: mock upstreams that speak the real OpenAI and Anthropic
wire formats, and a way to run any ASGI app on a loopback port. Loopback only, by design."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from turnout.testing.servers import ServerThread, free_port

if TYPE_CHECKING:
    from turnout.testing.mock_upstream import create_mock_upstream

__all__ = ["ServerThread", "create_mock_upstream", "free_port"]


def __getattr__(name: str) -> Any:
    # Imported on first use, not here: `python -m turnout.testing.mock_upstream` imports this package first, and
    # an eager import would put the module in sys.modules before runpy executes it (a RuntimeWarning, and two
    # copies of the module's globals).
    if name == "create_mock_upstream":
        from turnout.testing.mock_upstream import create_mock_upstream

        return create_mock_upstream
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
