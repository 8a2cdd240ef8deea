"""The request embedding: computed once per request and encoder, shared by every consumer (embedding and
classifier signals, selectors, the semantic cache)."""

from __future__ import annotations

import asyncio

import numpy as np

from turnout.context import RoutingContext
from turnout.models.encoders import get_encoder

# encoders this fast run inline on texts this short: a thread hop would cost about as much as the work (a long
# text takes the static encoder ~1 ms per 2,000 characters, up to its 8,000-character cut: off the loop then)
INLINE = {"minilm-static"}
INLINE_CHARS = 2000


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
            found = ctx.cache[key] = asyncio.ensure_future(asyncio.to_thread(model.encode, [text]))
    if isinstance(found, asyncio.Future):
        vectors = await found
        found = ctx.cache[key] = vectors[0] if vectors.ndim == 2 else vectors
    return found
