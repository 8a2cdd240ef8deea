"""The request embedding: computed once per request and encoder, shared by every consumer (embedding and
classifier signals, selectors, the semantic cache)."""

from __future__ import annotations

import asyncio

import numpy as np

from turnout.context import RoutingContext
from turnout.cpu import off_gil
from turnout.models.encoders import get_encoder

# encoders this fast run inline on texts this short: a thread hop would cost about as much as the work (a long
# text takes the static encoder ~1 ms per 2,000 characters, up to its 8,000-character cut: off the loop then)
INLINE = {"minilm-static"}
INLINE_CHARS = 2000


def _encode(encoder: str, text: str) -> np.ndarray:
    return get_encoder(encoder).encode([text])


async def _encode_off_loop(encoder: str, model: object, text: str) -> np.ndarray:
    # the static encoder's Python tokenizer holds the GIL: a worker process (turnout.cpu); an ONNX model releases
    # it while it runs, and loading one per worker would cost its memory again: a thread
    if encoder in INLINE:
        return await off_gil(_encode, encoder, text)
    return await asyncio.to_thread(model.encode, [text])  # type: ignore[attr-defined]


def embedding_inline(ctx: RoutingContext, encoder: str = "minilm-static", scope: str = "last_user") -> bool:
    """True when request_embedding(ctx, encoder, scope) will return without suspending."""
    found = ctx.cache.get(f"embedding:{encoder}:{scope}")
    if found is not None:
        return not isinstance(found, asyncio.Future) or found.done()
    return encoder in INLINE and len(ctx.text(scope)) <= INLINE_CHARS


async def request_embedding(ctx: RoutingContext, encoder: str = "minilm-static", scope: str = "last_user") -> np.ndarray:
    key = f"embedding:{encoder}:{scope}"
    found = ctx.cache.get(key)
    if found is None:
        model = get_encoder(encoder)
        text = ctx.text(scope)
        if encoder in INLINE and len(text) <= INLINE_CHARS:
            found = ctx.cache[key] = model.encode([text])[0]
        else:
            found = ctx.cache[key] = asyncio.ensure_future(_encode_off_loop(encoder, model, text))
    if isinstance(found, asyncio.Future):
        vectors = await found
        found = ctx.cache[key] = vectors[0] if vectors.ndim == 2 else vectors
    return found
