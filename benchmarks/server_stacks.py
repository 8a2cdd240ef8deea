"""Would a leaner HTTP server stack make turnout cheaper? The same trivial handler (read a chat completions body,
parse it, answer a fixed 300-byte JSON; no upstream) on each stack turnout could run on, driven alike in
alternating rounds, CPU per request of each server process: the stack's own cost, below which no routed request
can go on it.

    python benchmarks/server_stacks.py --json bench-out/server-stacks.json [--rounds 3] [--requests 3000]
        [--concurrency 1,16] [--stacks uvicorn,uvicorn-bounded,uvicorn-turnout,aiohttp,granian]

Stacks: `uvicorn` (httptools, uvloop, a bare ASGI callable), `uvicorn-bounded` (the same with turnout's connection,
server/protocol.py: head limits and deadline, head and body in one write), `uvicorn-turnout` (that, and the handler
behind turnout's TurnoutApp door dispatch with Starlette's Request and Response, as a door's endpoint is served),
`aiohttp` (aiohttp.web, as benchmarks/floor.py serves), `granian` (Rust HTTP, ASGI, one worker, uvloop; only where
`granian` is importable, e.g. `pip install --target DIR granian` and --granian-path DIR).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from _load import drive, start, stop

from turnout.testing import free_port

ANSWER = (b'{"id":"chatcmpl-x","object":"chat.completion","model":"mock-small","choices":[{"index":0,"message":'
          b'{"role":"assistant","content":"' + b"hello " * 38 + b'"}}]}')
PATH = "/v1/chat/completions"


async def bare_asgi(scope, receive, send) -> None:  # noqa: ANN001 - the ASGI callable
    import orjson

    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["method"] == "POST":
        orjson.loads(body)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]})
    await send({"type": "http.response.body", "body": ANSWER})


def turnout_app():  # noqa: ANN201 - a TurnoutApp whose one door endpoint is the trivial handler
    import orjson
    from starlette.requests import Request
    from starlette.responses import Response

    from turnout.server.app import TurnoutApp

    async def endpoint(request: Request) -> Response:
        orjson.loads(await request.body())
        return Response(ANSWER, media_type="application/json", headers={"x-turnout-model": "small"})

    async def health(request: Request) -> Response:
        return Response(b"ok")

    app = TurnoutApp(openapi_url=None, docs_url=None, redoc_url=None)
    app.door_endpoints[PATH] = endpoint
    app.add_route("/healthz", health)
    return app


def serve(stack: str, port: int) -> None:
    if stack == "aiohttp":
        import uvloop
        from aiohttp import web

        async def chat(request: web.Request) -> web.Response:
            import orjson

            orjson.loads(await request.read())
            return web.Response(body=ANSWER, content_type="application/json")

        async def health(_: web.Request) -> web.Response:
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post(PATH, chat)
        app.router.add_get("/healthz", health)
        web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, loop=uvloop.new_event_loop())
    elif stack.startswith("uvicorn"):
        import uvicorn

        from turnout.server.protocol import BoundedHttpToolsProtocol

        http = "httptools" if stack == "uvicorn" else BoundedHttpToolsProtocol
        app = turnout_app() if stack == "uvicorn-turnout" else bare_asgi
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, loop="uvloop", http=http)
    elif stack == "granian":
        from granian import Granian
        from granian.constants import Interfaces, Loops

        Granian(f"{Path(__file__).stem}:bare_asgi", address="127.0.0.1", port=port, interface=Interfaces.ASGI,
                workers=1, loop=Loops.uvloop, log_enabled=False).serve()
    else:
        raise SystemExit(f"unknown stack {stack!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3000, help="requests per round, stack and concurrency")
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--stacks", default="uvicorn,uvicorn-bounded,uvicorn-turnout,aiohttp,granian")
    parser.add_argument("--granian-path", help="a folder granian was installed into (pip install --target)")
    parser.add_argument("--serve", nargs=2, metavar=("STACK", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    stacks = args.stacks.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="turnout-stacks-"))
    procs, urls = {}, {}
    try:
        for stack in stacks:
            env = dict(os.environ)
            path = [str(Path(__file__).parent)] + ([args.granian_path] if stack == "granian" and args.granian_path
                                                   else [])
            env["PYTHONPATH"] = os.pathsep.join([*path, env.get("PYTHONPATH", "")])
            if stack == "granian" and os.system(f"env PYTHONPATH={env['PYTHONPATH']} {sys.executable} -c "
                                                "'import granian' 2>/dev/null") != 0:
                print("granian is not importable: skipped (see --granian-path)")
                continue
            port = free_port()
            procs[stack] = start([sys.executable, __file__, "--json", "-", "--serve", stack, str(port)],
                                 f"http://127.0.0.1:{port}/healthz", tmp / f"{stack}.log", env=env)
            urls[stack] = f"http://127.0.0.1:{port}{PATH}"
        body = {"model": "auto", "messages": [{"role": "user", "content": "hello there " * 20}]}
        cpu: dict[str, dict[str, list[float]]] = {}
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            for _ in range(args.rounds):
                for stack, url in urls.items():
                    result = drive(url, body, requests=args.requests, concurrency=concurrency, stream=False,
                                   pids=[procs[stack].pid]).as_dict()
                    cpu.setdefault(f"c{concurrency}", {}).setdefault(stack, []).append(result["cpu_ms_per_request"])
    finally:
        for proc in procs.values():
            stop(proc)
    report = {level: {stack: {"cpu_ms_per_request": statistics.median(v), "rounds": v} for stack, v in by.items()}
              for level, by in cpu.items()}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    table = Table(title=f"server stacks, trivial handler: CPU ms per request (median of {args.rounds} rounds)")
    table.add_column("stack")
    for level in report:
        table.add_column(level, justify="right")
    for stack in urls:
        table.add_row(stack, *(f"{report[level][stack]['cpu_ms_per_request']:.3f}" for level in report))
    Console(width=160).print(table)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
