"""The `grounded` judge: how well each sentence of the answer is supported by the context the request carried.

No NLI or cross-encoder model ships its weights in a Python package with a licence (the candidates on the
package index download them from a model hub at run time, which turnout never does), so this is a documented
lexical + embedding overlap, not entailment:

- context: the text of the request's messages whose role is in `sources` (system and developer documents, tool
  results — JSON flattened to "key value" lines — and user turns, where RAG pipelines put retrieved passages),
  split into sentences; the whole context is one more chunk.
- each answer sentence with at least `min_words` content words is a claim (greetings and questions are not);
  its support is `lexical_weight` × lexical coverage (the share of its content words, crudely stemmed, with
  number words read as numbers, that occur in the context) + (1 − lexical_weight) × embedding support (its
  best cosine with a context chunk under the packaged sentence encoder, rescaled from [cos_floor, cos_ceiling]
  to [0, 1]);
- then three checks that overlap cannot see, each multiplying the support by its penalty: a number the context
  does not contain (`number_penalty`), a capitalised name the context does not contain (`name_penalty`), and a
  negation or antonym that flips the polarity of the best-matching context sentence (`polarity_penalty`).

A claim below `threshold` is unsupported. The answer's score is its weakest claim's support (one unsupported
sentence is enough to fail it); `detail.sentences` lists every claim with its support and the reasons.
Known blind spots (measured in docs/judges.md): a claim that swaps two names or roles the context mentions
("B acquired A") keeps every word and number of the context and usually passes."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import ahocorasick
import numpy as np
from pydantic import Field

from turnout.judges.base import (
    Judge,
    JudgeEnv,
    JudgeParams,
    Verdict,
    answer_text,
    register,
)
from turnout.models.encoders import get_encoder
from turnout.signals.base import off_loop

SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Za-z0-9])|\n+\s*(?:[-*•]|\d+[.)])?\s*")
WORD = re.compile(r"\d[\d,]*(?:\.\d+)?|[A-Za-z][A-Za-z'-]*")
STOP = frozenset(["a", "an", "the", "and", "or", "but", "if", "of", "to", "in", "on", "at", "by", "for", "with", "from", "as", "is", "are", "was", "were", "be", "been", "being", "it", "its", "this", "that", "these", "those", "there", "here", "he", "she", "they", "we", "you", "i", "me", "my", "your", "our", "their", "his", "her", "them", "us", "do", "does", "did", "done", "has", "have", "had", "will", "would", "shall", "should", "can", "could", "may", "might", "must", "so", "than", "then", "also", "very", "just", "about", "into", "over", "per", "up", "out", "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "yes", "all", "any", "each", "both", "some", "such", "only", "own", "same", "too", "s", "t"])
NUMBER_WORDS = {w: str(i) for i, w in enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"])}
NUMBER_WORDS.update({"twice": "2", "double": "2", "half": "0.5", "dozen": "12", "twenty": "20", "thirty": "30",
                     "forty": "40", "fifty": "50", "hundred": "100", "thousand": "1000"})
NEGATIONS = frozenset({"not", "no", "never", "none", "nobody", "nothing", "without", "cannot", "neither", "nor",
                       "n't", "excluding", "except"})
# polarity pairs: a claim that uses one side where the context uses the other says the opposite
ANTONYMS = (("rose", "fell"), ("rise", "fall"), ("increase", "decrease"), ("increased", "decreased"),
            ("higher", "lower"), ("more", "less"), ("more", "fewer"), ("up", "down"), ("open", "closed"),
            ("opened", "closed"), ("including", "excluding"), ("include", "exclude"), ("introduced", "abolished"),
            ("allowed", "forbidden"), ("allowed", "prohibited"), ("permitted", "forbidden"), ("before", "after"),
            ("gain", "loss"), ("profit", "loss"), ("safe", "unsafe"), ("required", "optional"),
            ("fixed", "present"), ("all", "some"), ("every", "only"), ("any", "only"), ("free", "fee"))
Role = Literal["system", "developer", "tool", "user", "assistant"]
# Bounds for hostile sizes (an upstream's answer has no length limit, a request's context is up to 8 MiB): each
# claim is compared with every context sentence, so claims × sentences is the cost. Only the first MAX_CLAIMS
# claims are scored (the detail says how many were left unchecked), and sentences past MAX_CHUNKS are compared
# as one last chunk (lexical coverage, numbers and names still read the whole context).
MAX_CLAIMS = 256
MAX_CHUNKS = 4096
MAX_JSON_DEPTH = 64  # a tool result nested deeper is read as plain text


class GroundedParams(JudgeParams):
    sources: list[Role] = Field(default_factory=lambda: ["system", "developer", "tool", "user"], min_length=1,
                                description="message roles whose text is the context")
    encoder: Literal["minilm-static", "minilm-onnx"] = "minilm-static"
    lexical_weight: float = Field(0.5, ge=0, le=1)
    cos_floor: float = Field(0.3, ge=-1, le=1)
    cos_ceiling: float = Field(0.85, ge=-1, le=1)
    number_penalty: float = Field(0.3, ge=0, le=1, description="support multiplier for a number not in context")
    name_penalty: float = Field(0.5, ge=0, le=1, description="multiplier for a capitalised name not in context")
    polarity_penalty: float = Field(0.4, ge=0, le=1, description="multiplier for a flipped negation/antonym")
    min_words: int = Field(3, ge=1, description="content words a sentence needs to count as a claim")
    no_context: Literal["pass", "fail"] = "pass"  # an answer to a request without context cannot be checked


def _stem(word: str) -> str:
    word = word.lower().replace("\u2019", "'")
    if word in NUMBER_WORDS:
        return NUMBER_WORDS[word]
    if word[0].isdigit():
        try:
            value = float(word.replace(",", ""))
        except ValueError:
            return word
        return str(int(value)) if value.is_integer() else str(value)
    for suffix in ("ies", "ing", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def content_words(text: str) -> list[str]:
    return [_stem(w) for w in WORD.findall(text) if w.lower() not in STOP and w.lower() not in NEGATIONS]


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE.split(text) if s and s.strip()]


def _flatten_json(text: str) -> str:
    """A tool result that is JSON, as 'key value' sentences (keys with underscores read as words)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # a string nested past the parser's recursion limit is text too
        return text
    lines: list[str] = []

    def walk(node: Any, prefix: str, depth: int) -> None:
        if depth > MAX_JSON_DEPTH:
            raise RecursionError
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, f"{prefix} {str(key).replace('_', ' ')}".strip(), depth + 1)
        elif isinstance(node, list):
            for child in node:
                walk(child, prefix, depth + 1)
                lines.append("")
        else:
            lines.append(f"{prefix} {node}.")

    try:
        walk(value, "", 0)
    except RecursionError:
        return text
    return "\n".join(line for line in lines) if lines else text


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def context_text(request: dict[str, Any], sources: list[str]) -> str:
    parts = []
    for message in request.get("messages") or []:
        if message.get("role") in sources:
            text = _text(message.get("content"))
            parts.append(_flatten_json(text) if message.get("role") == "tool" else text)
    return "\n".join(p for p in parts if p.strip())


NAME = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z]{2,}\b")


def _polarity(words: set[str]) -> set[str]:
    """The antonym sides present, plus 'neg' when a negation is."""
    sides = {f"{i}{side}" for i, pair in enumerate(ANTONYMS) for side, w in enumerate(pair) if w in words}
    return sides | ({"neg"} if words & NEGATIONS else set())


def _flipped(claim: set[str], source: set[str]) -> bool:
    a, b = _polarity(claim), _polarity(source)
    if ("neg" in a) != ("neg" in b):
        return True
    return any(f"{k[:-1]}{1 - int(k[-1])}" in b and k not in b for k in a - {"neg"})


def _lower_words(text: str) -> set[str]:
    words = {w.lower().replace("\u2019", "'") for w in WORD.findall(text)}
    return words | ({"n't"} if re.search(r"n['’]t\b", text) else set())


class Support:
    """Scores the claims of one answer against one context (one encoder pass over both)."""

    def __init__(self, params: GroundedParams, context: str) -> None:
        self.p = params
        self.chunks = split_sentences(context) or [context]
        if len(self.chunks) > MAX_CHUNKS:
            self.chunks = self.chunks[:MAX_CHUNKS - 1] + [" ".join(self.chunks[MAX_CHUNKS - 1:])]
        self.context_words = set(content_words(context))
        self.context_lower = context.lower()
        self.context_numbers = {w for w in self.context_words if w[:1].isdigit()}
        self.chunk_lower = [_lower_words(c) for c in self.chunks]
        self.chunk_words = [set(content_words(c)) for c in self.chunks]
        self.chunk_numbers = [{_stem(w) for w in WORD.findall(c) if w[0].isdigit()} for c in self.chunks]

    def score(self, claims: list[str]) -> list[dict[str, Any]]:
        if not claims:
            return []
        encoder = get_encoder(self.p.encoder)
        vectors = encoder.encode(claims + self.chunks + ["\n".join(self.chunks)])
        claim_v, chunk_v = vectors[: len(claims)], vectors[len(claims):]
        cosines = claim_v @ chunk_v.T
        self.absent_names = self._absent_names(claims)
        # each content word -> the chunks that hold it: a claim's shared-word count with every chunk is a few
        # array additions, not a Python loop over the chunks
        postings: dict[str, list[int]] = {}
        for i, words in enumerate(self.chunk_words):
            for w in words:
                postings.setdefault(w, []).append(i)
        self.postings = {w: np.array(chunks, dtype=np.intp) for w, chunks in postings.items()}
        return [self._one(text, cosines[i]) for i, text in enumerate(claims)]

    def _absent_names(self, claims: list[str]) -> set[str]:
        """The capitalised names of the claims that the context does not contain (lower-cased substring search,
        all names in one Aho-Corasick pass over the context instead of one pass per name)."""
        names = {n.lower() for text in claims for n in NAME.findall(text)}
        if not names:
            return set()
        automaton = ahocorasick.Automaton()
        for name in names:
            automaton.add_word(name, name)
        automaton.make_automaton()
        return names - {name for _, name in automaton.iter(self.context_lower)}

    def _one(self, text: str, cosines: np.ndarray) -> dict[str, Any]:
        p = self.p
        words = content_words(text)
        lexical = sum(w in self.context_words for w in words) / len(words)
        # the context sentence the claim restates, if it restates one: the one sharing most of its words (ties:
        # the closer embedding), and the one with the closest embedding
        chunk_cos = cosines[:-1] if len(cosines) > 1 else cosines
        overlap = np.zeros(len(self.chunks), dtype=np.float64)
        for w in set(words):
            if (chunks := self.postings.get(w)) is not None:
                overlap[chunks] += 1  # a chunk holds each word once (postings of a set)
        shared = overlap + chunk_cos.astype(np.float64) / 2  # as len(set(words) & chunk) + float(cos) / 2 was
        restated = int(np.argmax(shared))
        near = sorted({restated, int(np.argmax(chunk_cos))})
        cosine = float(cosines.max())
        embedding = min(1.0, max(0.0, (cosine - p.cos_floor) / max(p.cos_ceiling - p.cos_floor, 1e-6)))
        support = p.lexical_weight * lexical + (1 - p.lexical_weight) * embedding
        reasons = []
        # only numbers written as digits: a paraphrase computes number words ("three decades", "half")
        digits = {_stem(w) for w in WORD.findall(text) if w[0].isdigit()}
        near_numbers = set().union(*(self.chunk_numbers[i] for i in near))
        new_numbers = sorted(digits - self.context_numbers)
        moved_numbers = sorted((digits & self.context_numbers) - near_numbers)
        if new_numbers or moved_numbers:
            support *= p.number_penalty
            reasons.append(f"numbers not in the context: {', '.join(new_numbers)}" if new_numbers else
                           f"numbers from another part of the context: {', '.join(moved_numbers)}")
        names = [n for n in NAME.findall(text) if n.lower() in self.absent_names]
        if names:
            support *= p.name_penalty
            reasons.append(f"names not in the context: {', '.join(sorted(set(names)))}")
        claim_words = _lower_words(text)
        if _flipped(claim_words, self.chunk_lower[restated]):
            support *= p.polarity_penalty
            reasons.append("negation or polarity differs from the context sentence it restates")
        return {"text": text, "support": round(support, 4), "lexical": round(lexical, 4),
                "cosine": round(cosine, 4), "closest": self.chunks[restated][:200], "reasons": reasons}


@register("grounded")
class GroundedJudge(Judge):
    Params = GroundedParams
    default_threshold = 0.5

    async def judge(self, request: dict[str, Any], answer: dict[str, Any], env: JudgeEnv) -> Verdict:
        return await off_loop(self.check, request, answer_text(answer))

    def check(self, request: dict[str, Any], text: str) -> Verdict:
        """Synchronous: encodes every claim and context sentence (a few ms for a page of context)."""
        p: GroundedParams = self.params  # type: ignore[assignment]
        context = context_text(request, list(p.sources))
        if not context.strip():
            return self.verdict(1.0 if p.no_context == "pass" else 0.0, reason="no context to check against",
                                sentences=[])
        claims = [s for s in split_sentences(text) if len(content_words(s)) >= p.min_words
                  and not s.rstrip().endswith("?")]
        if not claims:
            return self.verdict(1.0, reason="no claims to check", sentences=[])
        unchecked = max(0, len(claims) - MAX_CLAIMS)
        scored = Support(p, context).score(claims[:MAX_CLAIMS])
        for s in scored:
            s["supported"] = s["support"] >= self.threshold
        weakest = min(s["support"] for s in scored)
        share = sum(s["supported"] for s in scored) / len(scored)
        extra = {"unchecked_claims": unchecked} if unchecked else {}
        return self.verdict(weakest, supported_share=round(share, 4), sentences=scored,
                            method="lexical+embedding overlap", **extra)
