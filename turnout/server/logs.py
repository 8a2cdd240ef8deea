"""Logging set-up: plain text, or one JSON object per line (`--log-format json` / `server.log_format: json`)
with the request id and the routing outcome as fields. Secrets never reach a log line: messages are scrubbed
where they are written, and API keys are only ever handled as digests."""

from __future__ import annotations

import json
import logging
import time

FIELDS = ("request_id", "decision", "model", "status", "ms", "cost_usd", "error", "caller", "attempts", "cache")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exception"] = record.exc_info[0].__name__ if record.exc_info[0] else "error"
        return json.dumps(out, ensure_ascii=False)


def configure(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
