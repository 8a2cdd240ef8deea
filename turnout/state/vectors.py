"""Nearest-neighbour search over cache entries, per bucket (tenant × decision × model × context). A bucket
starts as a dense matrix (exact search, a few µs up to a thousand entries) and becomes an HNSW index (hnswlib)
when it grows past that, so a lookup never scans the whole store and one tenant's entries never crowd out
another's."""

from __future__ import annotations

import numpy as np

PROMOTE_AT = 1024  # entries in a bucket before it gets an HNSW index


def unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


class _Dense:
    """Live rows packed at the top of a matrix; removing swaps the last row in."""

    def __init__(self, dim: int) -> None:
        self.matrix = np.zeros((8, dim), dtype=np.float32)
        self.keys: list[str] = []
        self.rows: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: str, vector: np.ndarray) -> None:
        n = len(self.keys)
        if n == len(self.matrix):
            self.matrix = np.vstack([self.matrix, np.zeros_like(self.matrix)])
        self.matrix[n] = vector
        self.keys.append(key)
        self.rows[key] = n

    def remove(self, key: str) -> None:
        row, last = self.rows.pop(key), len(self.keys) - 1
        if row != last:
            moved = self.keys[last]
            self.matrix[row] = self.matrix[last]
            self.keys[row] = moved
            self.rows[moved] = row
        self.keys.pop()

    def search(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        sims = self.matrix[:len(self.keys)] @ vector
        top = np.argpartition(-sims, k - 1)[:k] if len(sims) > k else np.arange(len(sims))
        return sorted(((self.keys[i], float(sims[i])) for i in top), key=lambda p: -p[1])


class _Hnsw:
    """hnswlib's HNSW graph (inner product on unit vectors = cosine); deleted slots are reused."""

    def __init__(self, dim: int, dense: _Dense) -> None:
        import hnswlib

        self.index = hnswlib.Index(space="ip", dim=dim)
        self.index.init_index(max_elements=max(2 * len(dense), 1024), ef_construction=128, M=16,
                              allow_replace_deleted=True)
        self.index.set_ef(64)
        self.index.set_num_threads(1)  # one request, one core: the server has other requests to serve
        self.ids: dict[str, int] = {}
        self.keys: dict[int, str] = {}
        self.next = 0
        self.free = 0  # deleted slots that an add may take over
        keys = list(dense.rows)
        if keys:  # one batch: a better graph, built faster than one item at a time
            labels = np.arange(len(keys))
            self.index.add_items(dense.matrix[[dense.rows[k] for k in keys]], labels)
            self.ids = dict(zip(keys, labels.tolist()))
            self.keys = dict(zip(labels.tolist(), keys))
            self.next = len(keys)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, key: str, vector: np.ndarray) -> None:
        label = self.next
        self.next += 1
        if self.free:
            self.index.add_items(vector[None, :], [label], replace_deleted=True)
            self.free -= 1
        else:
            if self.index.get_current_count() >= self.index.get_max_elements():
                self.index.resize_index(2 * self.index.get_max_elements())
            self.index.add_items(vector[None, :], [label])
        self.ids[key], self.keys[label] = label, key

    def remove(self, key: str) -> None:
        label = self.ids.pop(key)
        del self.keys[label]
        self.index.mark_deleted(label)
        self.free += 1

    def search(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        labels, distances = self.index.knn_query(vector[None, :], k=k)
        return [(self.keys[int(i)], 1.0 - float(d)) for i, d in zip(labels[0], distances[0]) if int(i) in self.keys]


class VectorIndex:
    """Unit vectors by entry key, grouped in buckets; `search` returns (key, cosine), best first. Each bucket
    has the dimension of its first vector (a bucket is one encoder's: its name is part of the bucket): one
    index serves caches with different encoders, and entries of an encoder no longer configured (a config
    change) only sit in their own buckets until they expire. A vector of another dimension than its bucket's
    is not comparable: it is skipped, and a search with one finds nothing."""

    def __init__(self) -> None:
        self.buckets: dict[str, _Dense | _Hnsw] = {}
        self.dims: dict[str, int] = {}
        self.where: dict[str, str] = {}  # entry key → bucket

    def __len__(self) -> int:
        return len(self.where)

    def __contains__(self, key: str) -> bool:
        return key in self.where

    def add(self, bucket: str, key: str, vector: np.ndarray) -> None:
        vector = unit(vector)
        dim = self.dims.setdefault(bucket, len(vector))
        if len(vector) != dim:
            return
        if key in self.where:
            self.remove(key)
        b = self.buckets.get(bucket)
        if b is None:
            b = self.buckets[bucket] = _Dense(dim)
            self.dims[bucket] = dim
        b.add(key, vector)
        self.where[key] = bucket
        if isinstance(b, _Dense) and len(b) > PROMOTE_AT:
            self.buckets[bucket] = _Hnsw(dim, b)

    def remove(self, key: str) -> None:
        bucket = self.where.pop(key, None)
        if bucket is None:
            return
        b = self.buckets[bucket]
        b.remove(key)
        if not len(b):
            del self.buckets[bucket]
            del self.dims[bucket]

    def search(self, bucket: str, vector: np.ndarray, k: int = 4) -> list[tuple[str, float]]:
        b = self.buckets.get(bucket)
        if b is None:
            return []
        vector = unit(vector)
        if len(vector) != self.dims[bucket]:
            return []
        return b.search(vector, min(k, len(b)))
