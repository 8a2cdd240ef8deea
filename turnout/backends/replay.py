"""The replay backend: answers with recorded answers of real models, so the whole pipeline runs with no
keys, no GPU and no network. A recorded prompt gets its recorded answer. Any other prompt gets the answer to
the nearest recorded prompt (TF-IDF cosine) when that one is at least `min_similarity` alike, and otherwise a
note that the recording holds no answer to it; either way the answer and its `turnout_replay` field say which
recorded prompt was used and how similar it was."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import re
import time
import unicodedata
from base64 import b64encode
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from turnout.backends.base import Backend, Chunk, register
from turnout.config import ModelConfig
from turnout.context import _text_of, estimate_tokens
from turnout.errors import InvalidRequestError
from turnout.params import Params

PACKAGED = "gsm8k_replay.jsonl.gz"
# GSM8K's questions use typographic quotes ("Janet’s ducks"); a user who types the same question with a
# straight apostrophe is asking the recorded question
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
                         "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"'})


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).translate(_QUOTES)).strip().lower()


def _choices(body: dict[str, Any]) -> int:
    return int(body.get("n") or 1)


def _quote(prompt: str, limit: int = 160) -> str:
    return f"\"{prompt[:limit]}{'…' if len(prompt) > limit else ''}\""


@dataclass(frozen=True)
class Recording:
    prompts: list[str]
    answers: list[str]
    exact: dict[str, int]
    vectorizer: Any
    matrix: Any
    # Normalising and vectorising cost time in the length of the prompt, on the event loop (an 8 MB body took
    # 3.5 s); a prompt this much longer than every recorded one is none of them, nor a rewording of one.
    max_chars: int

    def lookup(self, prompt: str) -> tuple[int | None, float, bool]:
        """(record index, cosine similarity, exact?) of the recorded prompt nearest to `prompt`; no index for a
        prompt longer than `max_chars`."""
        prompt = prompt.strip()
        if len(prompt) > self.max_chars:
            return None, 0.0, False
        index = self.exact.get(_normalise(prompt))
        if index is not None:
            return index, 1.0, True
        query = self.vectorizer.transform([prompt])
        sims = (self.matrix @ query.T).toarray().ravel()
        best = int(np.argmax(sims))
        return best, float(sims[best]), False


def _read_records(dataset: str) -> list[dict[str, Any]]:
    if dataset == "builtin":
        raw = resources.files("turnout.demo").joinpath(PACKAGED).read_bytes()
    else:
        raw = Path(dataset).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]


@lru_cache(maxsize=8)
def load_recording(dataset: str, model: str) -> Recording:
    from sklearn.feature_extraction.text import TfidfVectorizer

    rows = [r for r in _read_records(dataset) if model in (r.get("answers") or {})]
    if not rows:
        raise ValueError(f"the recording {dataset!r} has no answers of model {model!r}")
    prompts = [r["prompt"] for r in rows]
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    matrix = vectorizer.fit_transform(prompts)
    exact = {_normalise(p): i for i, p in enumerate(prompts)}
    max_chars = max(4096, 4 * max(len(p) for p in prompts))
    return Recording(prompts, [r["answers"][model] for r in rows], exact, vectorizer, matrix, max_chars)


ENCODER = "minilm-static"


def _encode(texts: list[str]) -> Any:
    from turnout.models.encoders import get_encoder

    return get_encoder(ENCODER).encode(texts)


def embedding_texts(body: dict[str, Any]) -> list[str]:
    """An embeddings request's input as texts; token ids mean nothing to this encoder's own tokenizer."""
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    if not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidRequestError("input: the demo encoder takes text (a string or a list of strings), not token "
                                  "ids", param="input")
    return texts


class ReplayOptions(Params):
    dataset: str = Field("builtin", description="'builtin' or a JSONL(.gz) file of {prompt, answers: {model: text}}")
    answers_of: str | None = Field(None, description="recorded model to answer as; defaults to `model`")
    min_similarity: float = Field(0.5, ge=0, le=1, description=(
        "an unrecorded prompt gets the nearest recorded prompt's answer only when their TF-IDF cosine is at least "
        "this; below it, a note that the recording has no answer (0: always the nearest)"))
    stream_words_per_chunk: int = Field(4, ge=1)
    stream_delay_ms: float = Field(0.0, ge=0)


@register("replay")
class ReplayBackend(Backend):
    Options = ReplayOptions

    def __init__(self, name: str, config: ModelConfig, *, path: str = "") -> None:
        super().__init__(name, config, path=path)
        self.recorded_model = self.options.answers_of or self.upstream_model
        if config.embeddings:
            return  # an embeddings model answers from the packaged encoder, not from a recording
        try:
            self.recording = load_recording(self.options.dataset, self.recorded_model)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            from turnout.config import ConfigError, ConfigIssue

            raise ConfigError([ConfigIssue(f"models.{name}.options.dataset", f"cannot load recording: {exc}")]) from None

    def _reply(self, prompt: str) -> tuple[str, str, float, str | None]:
        """(match, answer, similarity, recorded prompt used) for the last user message."""
        index, similarity, exact = self.recording.lookup(prompt)
        held = f"{self.recorded_model} here only replays its recorded answers to the " \
               f"{len(self.recording.prompts):,} prompts of its recording"
        advice = "Ask one of the recorded prompts, or serve real models with --config."
        if index is None:
            return "none", (f"[turnout replay: no recorded answer fits this prompt. {held}, and this one is longer than "
                            f"{self.recording.max_chars:,} characters, far beyond the longest of them. {advice}]"), \
                similarity, None
        recorded = self.recording.prompts[index]
        if exact:
            return "exact", self.recording.answers[index], similarity, recorded
        if similarity >= self.options.min_similarity:
            return "nearest", (f"[turnout replay: this prompt is not in the recording; this is {self.recorded_model}'s "
                               f"answer to a different, recorded prompt, the nearest one (similarity {similarity:.2f}): "
                               f"{_quote(recorded)}]\n\n{self.recording.answers[index]}"), similarity, recorded
        # the nearest recorded prompt is another question: its answer would be an answer to that question
        return "none", (f"[turnout replay: no recorded answer fits this prompt. {held}; the nearest one is too "
                        f"different (similarity {similarity:.2f}, below {self.options.min_similarity:g}): "
                        f"{_quote(recorded)}. {advice}]"), similarity, recorded

    def _answer(self, body: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
        messages = body.get("messages") or []
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        if not users:
            raise InvalidRequestError("the replay backend needs at least one user message", param="messages")
        match, answer, similarity, recorded = self._reply(_text_of(users[-1].get("content")))
        prompt_tokens = estimate_tokens("\n".join(_text_of(m.get("content")) for m in messages if isinstance(m, dict)))
        # every one of the n choices is billed, as a real provider bills them (budgets settle on this usage)
        completion_tokens = estimate_tokens(answer) * _choices(body)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        meta = {"match": match, "similarity": round(similarity, 4), "recorded_prompt": recorded}
        return answer, usage, meta

    async def embed(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        """Real sentence vectors from turnout's packaged static encoder (`minilm-static`, 256 dimensions): a demo
        of the endpoint, good for trying similarity search, not a hosted embedding model."""
        texts = embedding_texts(body)
        # off the loop: the first call loads the encoder, and a long list of inputs is a few ms per input
        vectors = await asyncio.to_thread(_encode, texts)
        if body.get("dimensions") not in (None, vectors.shape[1]):
            raise InvalidRequestError(f"dimensions: the demo encoder's vectors have {vectors.shape[1]} dimensions",
                                      param="dimensions")
        base64 = body.get("encoding_format") == "base64"
        data = [{"object": "embedding", "index": i,
                 "embedding": b64encode(row.astype("<f4").tobytes()).decode() if base64 else row.tolist()}
                for i, row in enumerate(vectors)]
        tokens = sum(estimate_tokens(t) for t in texts)
        return {"object": "list", "data": data, "model": self.upstream_model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def _id(self, body: dict[str, Any]) -> str:
        return "chatcmpl-replay-" + hashlib.sha1(repr(body.get("messages")).encode()).hexdigest()[:20]

    async def complete(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        answer, usage, meta = self._answer(body)
        choices = [{"index": i, "message": {"role": "assistant", "content": answer}, "logprobs": None,
                    "finish_reason": "stop"} for i in range(_choices(body))]
        return {"id": self._id(body), "object": "chat.completion", "created": int(time.time()),
                "model": self.recorded_model, "choices": choices, "usage": usage, "turnout_replay": meta}

    async def stream(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> AsyncIterator[list[Chunk]]:
        answer, usage, meta = self._answer(body)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {"id": self._id(body), "object": "chat.completion.chunk", "created": int(time.time()),
                "model": self.recorded_model}
        n = _choices(body)

        def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0, **extra: Any) -> str:
            out = {**base, "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
                   **extra}
            if include_usage:
                out["usage"] = None
            return json.dumps(out, separators=(",", ":"))

        words = re.findall(r"\S+\s*|\s+", answer)
        step, delay = self.options.stream_words_per_chunk, self.options.stream_delay_ms / 1000
        batch: list[Chunk] = []
        for index in range(n):
            batch.append(chunk({"role": "assistant", "content": ""}, index=index, turnout_replay=meta))
            for start in range(0, len(words), step):
                if delay:  # paced like a live model: one chunk per delay
                    yield batch
                    batch = []
                    await asyncio.sleep(delay)
                batch.append(chunk({"content": "".join(words[start:start + step])}, index=index))
            batch.append(chunk({}, "stop", index=index))
        if include_usage:
            batch.append(json.dumps({**base, "choices": [], "usage": usage}, separators=(",", ":")))
        yield batch
