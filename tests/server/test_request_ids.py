"""Request ids (server/exchange.new_request_id): shaped as uuid4().hex, distinct, and not shared with a forked
worker."""

from __future__ import annotations

import multiprocessing
import uuid

from turnout.server.exchange import new_request_id


def test_ids_are_uuid4_hex_and_distinct() -> None:
    ids = [new_request_id() for _ in range(10_000)]  # more than one 4 KiB read of random bytes
    assert len(set(ids)) == len(ids)
    for rid in ids[:: 97]:
        parsed = uuid.UUID(hex=rid)
        assert len(rid) == 32 and parsed.hex == rid and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def _child_id(queue: multiprocessing.Queue) -> None:
    queue.put(new_request_id())


def test_a_forked_child_does_not_repeat_its_parents_next_id() -> None:
    new_request_id()  # the parent holds random bytes that a child would otherwise inherit
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_id, args=(queue,))
    child.start()
    from_child = queue.get(timeout=30)
    child.join(30)
    assert from_child != new_request_id()
