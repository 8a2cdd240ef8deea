"""The live dashboard: a page at /dashboard (assets shipped in the package, no CDN) over documented JSON and SSE
endpoints (/v1/dashboard/summary, /v1/dashboard/events, /v1/dashboard/config). See docs/dashboard.md."""

from turnout.server.dashboard.routes import router

__all__ = ["router"]
