"""The cache's vector index and stores, directly."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from turnout.state.cache import CacheEntry, MemoryCacheStore
from turnout.state.vectors import PROMOTE_AT, VectorIndex, _Hnsw


def test_buckets_are_separate_and_large_buckets_become_hnsw():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(PROMOTE_AT + 500, 64)).astype(np.float32)
    index = VectorIndex()
    for i, v in enumerate(x):
        index.add("big", f"k{i}", v)
    index.add("small", "only", x[0])
    assert isinstance(index.buckets["big"], _Hnsw) and len(index) == len(x) + 1
    assert index.search("big", x[7] + 0.01)[0][0] == "k7"
    assert index.search("small", x[7]) == [("only", index.search("small", x[7])[0][1])]
    for i in range(0, len(x), 2):  # deleted slots are reused, nothing deleted is returned
        index.remove(f"k{i}")
    for i in range(0, len(x), 2):
        index.add("big", f"again{i}", x[i])
    assert index.search("big", x[10])[0][0] == "again10" and index.search("big", x[11])[0][0] == "k11"
    assert all(not k.startswith("k") or int(k[1:]) % 2 for k, _ in index.search("big", x[20], 8))


def test_memory_store_is_lru_bounded_and_expires():
    async def run():
        store = MemoryCacheStore(max_entries=3)
        now = time.time()
        for i in range(3):
            await store.put(CacheEntry(f"k{i}", "b", f"p{i}", {"i": i}, now, now + 60), np.eye(4)[i])
        await store.get("k0")  # k0 is now the most recently used: k1 goes first
        await store.put(CacheEntry("k3", "b", "p3", {}, now, now + 60), np.eye(4)[3])
        assert [k for k in ("k0", "k1", "k2", "k3") if await store.get(k)] == ["k0", "k2", "k3"]
        assert "k1" not in store.index and len(store.index) == 3
        await store.put(CacheEntry("old", "b", "p", {}, now - 10, now - 1), np.ones(4))
        assert await store.get("old") is None and "old" not in store.index

    asyncio.run(run())


def test_buckets_of_two_encoders_share_one_index():
    """The first vector no longer fixes the dimension of the whole index: each bucket has its own."""
    index = VectorIndex()
    index.add("onnx-bucket", "a", np.eye(384)[0])
    index.add("static-bucket", "b", np.eye(256)[1])
    assert index.search("static-bucket", np.eye(256)[1])[0][0] == "b"
    assert index.search("onnx-bucket", np.eye(384)[0])[0][0] == "a"
    index.add("static-bucket", "c", np.eye(384)[2])  # another dimension than its bucket's: skipped
    assert "c" not in index and index.search("static-bucket", np.eye(384)[2]) == []
    index.remove("b")
    index.add("static-bucket", "d", np.eye(128)[3])  # an emptied bucket takes the next vector's dimension
    assert index.search("static-bucket", np.eye(128)[3])[0][0] == "d"
