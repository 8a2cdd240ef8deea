"""A small OTLP/HTTP trace receiver for tests and local looks: POST /v1/traces takes the protobuf
`ExportTraceServiceRequest` any OpenTelemetry exporter sends (gzip or not) and keeps its spans; GET /_spans lists
them as JSON (ids in hex, attributes as plain values, the resource's service.name), DELETE /_spans clears them.

    python -m turnout.testing.otlp_receiver --port 4318     # then observability.otlp_endpoint: http://127.0.0.1:4318
"""

from __future__ import annotations

import gzip
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PROTOBUF = "application/x-protobuf"


def _value(any_value: Any) -> Any:
    """An OTLP AnyValue as a Python value."""
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind)


def decode(body: bytes) -> list[dict[str, Any]]:
    """The spans of one ExportTraceServiceRequest, flattened."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append({
                    "name": span.name, "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex(), "kind": span.kind,
                    "start_ns": span.start_time_unix_nano, "end_ns": span.end_time_unix_nano,
                    "status": {"code": span.status.code, "message": span.status.message},
                    "attributes": {kv.key: _value(kv.value) for kv in span.attributes},
                    "service": resource.get("service.name"), "scope": scope_spans.scope.name})
    return spans


async def export(request: Request) -> Response:
    body = await request.body()
    if request.headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    if request.headers.get("content-type", "").split(";")[0] != PROTOBUF:
        return Response(b"", status_code=415)
    try:
        spans = decode(body)
    except Exception:  # noqa: BLE001 - google.protobuf's DecodeError and friends: a bad body, as a collector says
        return Response(b"", status_code=400)
    request.app.state.spans.extend(spans)
    request.app.state.exports.append({k: v for k, v in request.headers.items() if k not in ("content-length",)})
    # an empty ExportTraceServiceResponse: every span accepted
    return Response(b"", media_type=PROTOBUF)


async def list_spans(request: Request) -> Response:
    state = request.app.state
    if request.method == "DELETE":
        state.spans.clear()
        state.exports.clear()
        return JSONResponse({"cleared": True})
    return JSONResponse({"spans": state.spans, "exports": state.exports})


def create_otlp_receiver() -> Starlette:
    app = Starlette(routes=[Route("/v1/traces", export, methods=["POST"]),
                            Route("/_spans", list_spans, methods=["GET", "DELETE"])])
    app.state.spans = []
    app.state.exports = []  # each export's request headers (a collector's auth header arrives there)
    return app


def main() -> None:
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args()
    uvicorn.run(create_otlp_receiver(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
