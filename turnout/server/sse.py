"""Streaming a response out: the internal chunks framed by the request's door, errors as its error event."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from turnout.doors import Framer
from turnout.errors import (
    StreamInterruptedError,
    TurnoutError,
    scrub_field,
    scrub_message,
)

log = logging.getLogger("turnout.stream")

CLIENT_GONE = "client_disconnected"


class EventStreamResponse(StreamingResponse):
    """A StreamingResponse that stops when the client goes away. uvicorn speaks ASGI 2.3, where a write to a closed
    connection is dropped silently, so Starlette runs every stream in an anyio task group beside a listener; here
    the connection's lost-callback (HeadWithBodyCycle.when_gone), or under another server one plain task waiting
    for the disconnect, cancels the stream, which ends the relay and with it the upstream request."""

    ended = False  # the last frame was sent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        streaming = asyncio.current_task()
        gone = False

        def left() -> None:
            nonlocal gone
            if not self.ended:  # uvicorn answers "disconnect" once the response is complete, too
                gone = True
                streaming.cancel()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            left()

        # turnout's own connection (server/protocol.py) says when the client leaves; another server is watched
        when_gone = getattr(getattr(receive, "__self__", None), "when_gone", None)
        watcher = None
        if when_gone is not None:
            when_gone(left)
        else:
            watcher = asyncio.get_running_loop().create_task(watch())
        try:
            await self.stream_response(send)
        except asyncio.CancelledError:
            if not gone:
                raise
            streaming.uncancel()  # the client left: the stream is over, the server goes on
        finally:
            if watcher is not None:
                watcher.cancel()
            else:
                when_gone(None)

    async def stream_response(self, send: Send) -> None:
        """Starlette's, but the last frame ends the response in the same write (no empty chunk after it)."""
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async for chunk in self.body_iterator:
            if self.ended:
                continue  # nothing follows the last frame; the relay is only let finish
            self.ended = isinstance(chunk, LastFrame)
            await send({"type": "http.response.body", "body": chunk, "more_body": not self.ended})
        if not self.ended:
            self.ended = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})


class LastFrame(bytes):
    """What the relay yields last: the response can end with it."""


async def relay(
    first: list[str],
    rest: AsyncIterator[list[str]],
    *,
    framer: Framer,
    on_chunk: Callable[[str], Any],
    on_end: Callable[[str | None], None],
    trailer: Callable[[], str],
    secrets: tuple[str, ...] | Callable[[], tuple[str, ...]] = (),
) -> AsyncIterator[bytes]:
    """Yield the upstream's chunk batches in the door's framing, one write per batch; `on_chunk` sees each chunk
    first and returns its parsed value, which the framer gets beside the text. A failure mid-stream ends the
    stream with the door's error event (never a silent truncation); `on_end` always runs, with the error code if
    there was one (`client_disconnected` when the client went away first). `secrets` (what an error must not
    quote) may be a function, asked only when a stream fails: most streams never need them."""
    error: str | None = None
    try:
        if data := framer.frames(first, [on_chunk(chunk) for chunk in first]):
            yield data
        async for batch in rest:
            if data := framer.frames(batch, [on_chunk(chunk) for chunk in batch]):
                yield data
        yield LastFrame(await framer.end(trailer()))
    except (asyncio.CancelledError, GeneratorExit):
        error = CLIENT_GONE
        raise
    except TurnoutError as exc:
        hidden = secrets() if callable(secrets) else secrets
        error = scrub_field(exc.code, hidden) or StreamInterruptedError.code
        log.warning("stream ended by upstream failure: %s", scrub_message(exc.message, hidden))
        yield LastFrame(framer.error(exc, hidden))
    except Exception as exc:  # noqa: BLE001 - the client gets a clean error event, never a hang
        error = StreamInterruptedError.code
        log.error("stream failed: %s", type(exc).__name__)
        hidden = secrets() if callable(secrets) else secrets
        yield LastFrame(framer.error(StreamInterruptedError("the stream failed inside turnout"), hidden))
    finally:
        on_end(error)
        close = getattr(rest, "aclose", None)
        if close is not None:
            await close()  # releases the upstream connection when the client goes away
