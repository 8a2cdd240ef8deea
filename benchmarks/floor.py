"""The Python floor: the least a Python proxy does for a chat completion — read the body, parse it (to see
`stream`), forward it over a pooled connection, relay the answer or its stream chunk by chunk. No routing, no
auth, no accounting: what turnout and the peers add on top is what they cost beyond this.

    python benchmarks/floor.py --upstream http://127.0.0.1:9000 --port 9100
"""

from __future__ import annotations

import argparse

import aiohttp
import orjson
from aiohttp import web


def app(upstream: str) -> web.Application:
    async def start(application: web.Application) -> None:
        application["client"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256), auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar())

    async def close(application: web.Application) -> None:
        await application["client"].close()

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        stream = bool(orjson.loads(body).get("stream"))
        headers = {"content-type": "application/json"}
        async with request.app["client"].post(f"{upstream}/v1/chat/completions", data=body,
                                              headers=headers) as answer:
            if not stream:
                return web.Response(body=await answer.read(), status=answer.status,
                                    content_type=answer.content_type)
            relay = web.StreamResponse(status=answer.status, headers={"content-type": "text/event-stream"})
            try:
                await relay.prepare(request)
                async for chunk in answer.content.iter_any():
                    await relay.write(chunk)
                await relay.write_eof()
            except ConnectionResetError:  # the client left (a load generator stopping mid-flight)
                pass
            return relay

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    application = web.Application()
    application.router.add_post("/v1/chat/completions", chat)
    application.router.add_get("/healthz", health)
    application.on_startup.append(start)
    application.on_cleanup.append(close)
    return application


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop
        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    web.run_app(app(args.upstream.rstrip("/")), host="127.0.0.1", port=args.port, print=None, access_log=None,
                loop=loop_factory() if loop_factory else None)


if __name__ == "__main__":
    main()
