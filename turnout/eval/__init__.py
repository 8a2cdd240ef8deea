"""Offline evaluation: datasets from ../shared/data, metrics and reports. Never imported by the server."""
