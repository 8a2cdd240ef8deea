"""The HTTP server: FastAPI app, routes, errors, streaming and hot reload."""

from turnout.server.app import app_from_env, create_app

__all__ = ["app_from_env", "create_app"]
