"""Nearest-neighbour search over cache entries, per bucket (tenant × decision × model × context). A bucket
starts as a dense matrix (exact search, a few µs up to a thousand entries) and becomes an HNSW index (usearch)
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
    def __init__(self, dim: int, dense: _Dense) -> None:
        from usearch.index import Index

        self.index = Index(ndim=dim, metric="cos", dtype="f32", connectivity=16, expansion_add=64,
                           expansion_search=64)
        self.ids: dict[str, int] = {}
        self.keys: dict[int, str] = {}
        self.next = 0
        for key, row in list(dense.rows.items()):
            self.add(key, dense.matrix[row])

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, key: str, vector: np.ndarray) -> None:
        self.ids[key], self.keys[self.next] = self.next, key
        self.index.add(self.next, vector)
        self.next += 1

    def remove(self, key: str) -> None:
        i = self.ids.pop(key)
        del self.keys[i]
        self.index.remove(i)

    def search(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        found = self.index.search(vector, k)
        return [(self.keys[int(i)], 1.0 - float(d)) for i, d in zip(found.keys, found.distances)
                if int(i) in self.keys]


class VectorIndex:
    """Unit vectors by entry key, grouped in buckets; `search` returns (key, cosine), best first."""

    def __init__(self, dim: int | None = None) -> None:
        self.dim = dim
        self.buckets: dict[str, _Dense | _Hnsw] = {}
        self.where: dict[str, str] = {}  # entry key → bucket

    def __len__(self) -> int:
        return len(self.where)

    def __contains__(self, key: str) -> bool:
        return key in self.where

    def add(self, bucket: str, key: str, vector: np.ndarray) -> None:
        vector = unit(vector)
        if self.dim is None:
            self.dim = len(vector)
        if len(vector) != self.dim:
            return  # an entry from another encoder (a config change): not comparable, skip it
        if key in self.where:
            self.remove(key)
        b = self.buckets.get(bucket)
        if b is None:
            b = self.buckets[bucket] = _Dense(self.dim)
        b.add(key, vector)
        self.where[key] = bucket
        if isinstance(b, _Dense) and len(b) > PROMOTE_AT:
            self.buckets[bucket] = _Hnsw(self.dim, b)

    def remove(self, key: str) -> None:
        bucket = self.where.pop(key, None)
        if bucket is None:
            return
        b = self.buckets[bucket]
        b.remove(key)
        if not len(b):
            del self.buckets[bucket]

    def search(self, bucket: str, vector: np.ndarray, k: int = 4) -> list[tuple[str, float]]:
        b = self.buckets.get(bucket)
        if b is None or self.dim is None:
            return []
        vector = unit(vector)
        if len(vector) != self.dim:
            return []
        return b.search(vector, min(k, len(b)))
