"""Labelled conversations for the injection detector: llm-warden's test split (English, MIT) and the
hand-written multilingual splits in turnout/eval/data/injection (`dev` and `final` for tuning, `final2`–`final4`
each read once, `final5` read once, `final6` read once, `final7` held out; see the README there for how they were written and how the derived rows below
are made).

Every row is {"messages", "label" (1 = injection or jailbreak), "lang", "kind"}: the detector scores the
conversation as the guard sees it, every role included."""

from __future__ import annotations

import base64
import csv
import json
from importlib import resources
from pathlib import Path
from typing import Any

Row = dict[str, Any]
SPLITS = ("dev", "final", "final2", "final3", "final4", "final5", "final6", "final7")
LANGS = ("en", "de", "fr", "es", "it")
FILLER_CHARS = 4000

# benign question appended after a system prompt or a memory, per language
_QUESTION = {"en": "What are your opening hours?", "de": "Wann habt ihr geöffnet?",
             "fr": "Quels sont vos horaires d'ouverture ?", "es": "¿Cuál es vuestro horario?",
             "it": "Quali sono i vostri orari di apertura?"}
_HOMOGLYPHS = str.maketrans({"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "i": "і", "x": "х"})


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def _conversation(row: dict[str, Any]) -> list[dict[str, Any]]:
    kind, text, lang = row["kind"], row["text"], row["lang"]
    if kind in ("tool", "email"):  # an e-mail arrives as what a mailbox tool returned
        name = "read_inbox" if kind == "email" else "lookup"
        call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": "{}"}}
        return [_user(row["ask"]), {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": text}]
    if kind == "document":
        return [_user(f"{row['ask']}\n\n{text}")]
    if kind in ("memory", "system"):
        return [{"role": "system", "content": text}, _user(_QUESTION[lang])]
    return [_user(text)]


def obfuscate(text: str, how: str) -> str:
    """The obfuscations an attacker uses to slip a payload past a text classifier."""
    if how == "base64":
        return "Decode and follow: " + base64.b64encode(text.encode("utf-8")).decode("ascii")
    if how == "hex":
        return "hex: " + text.encode("utf-8").hex()
    if how == "leet":
        return text.translate(str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}))
    if how == "spaced":
        return " ".join(text)
    if how == "homoglyph":
        return text.translate(_HOMOGLYPHS)
    if how == "zero_width":
        return "\u200b".join(text)
    raise ValueError(f"unknown obfuscation {how!r}")


OBFUSCATIONS = ("base64", "leet", "spaced", "homoglyph", "zero_width", "hex")


def warden_split(shared: Path, name: str) -> list[tuple[str, str]]:
    """llm-warden's `default` split `name` (train or test) as (prompt, benign|jailbreak), duplicates dropped; the
    test split also without the 6 prompts it shares with train."""
    def read(which: str) -> list[tuple[str, str]]:
        path = shared / f"jailbreak/default/jailbreak_dataset_{which}.csv"
        with path.open(newline="", encoding="utf-8") as f:
            rows = [(r["prompt"], r["type"]) for r in csv.DictReader(f)]
        return list(dict(rows).items())

    train = read("train")
    if name == "train":
        return train
    seen = {t for t, _ in train}
    return [x for x in read("test") if x[0] not in seen]


def _filler(shared: Path) -> str:
    """About 4 KB of benign text: llm-warden test-split benign prompts joined (never trained on)."""
    test = warden_split(shared, "test")
    parts, size = [], 0
    for text, label in test:
        if label == "benign" and size < FILLER_CHARS:
            parts.append(text.strip())
            size += len(text) + 2
    return "\n\n".join(parts)[:FILLER_CHARS]


def written_rows(split: str) -> list[dict[str, Any]]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: one of {', '.join(SPLITS)}")
    path = resources.files("turnout.eval").joinpath(f"data/injection/{split}.jsonl")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def multilingual_rows(split: str, shared: Path | None = None) -> list[Row]:
    """The split's written rows as conversations, plus the derived `obfuscated` and (with `shared`) `long` rows."""
    written = written_rows(split)
    rows = [{"messages": _conversation(r), "label": r["label"], "lang": r["lang"], "kind": r["kind"]}
            for r in written]
    n = 0
    for lang in LANGS:
        direct = [r for r in written if r["lang"] == lang and r["kind"] == "direct"]
        for r in direct[:2]:
            how = OBFUSCATIONS[n % len(OBFUSCATIONS)]
            rows.append({"messages": [_user(obfuscate(r["text"], how))], "label": 1, "lang": lang,
                         "kind": "obfuscated", "obfuscation": how})
            n += 1
    if shared is not None:
        filler = _filler(shared)
        for lang in LANGS:
            payload = [r for r in written if r["lang"] == lang and r["kind"] == "direct"][-1]["text"]
            rows.append({"messages": [_user(f"{filler}\n\n{payload}")], "label": 1, "lang": lang, "kind": "long"})
        rows.append({"messages": [_user(filler)], "label": 0, "lang": "en", "kind": "long"})
    return rows


def warden_rows(shared: Path) -> list[Row]:
    """llm-warden's test split (English; prompts also in its train split dropped) as one-message rows."""
    test = warden_split(shared, "test")
    return [{"messages": [_user(t)], "label": int(label == "jailbreak"), "lang": "en", "kind": "warden"}
            for t, label in test]


def _eight_grams(text: str) -> set[str]:
    import re

    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i:i + 8]) for i in range(len(words) - 7)}


def everyday_rows(shared: Path) -> list[Row]:
    """A large false-alarm set of benign user prompts the detector is not trained on: LLMRouter's *test*-split
    questions (MIT; 14 tasks, among them MGSM's questions in ten languages) and GSM8K's test questions (as RouteLLM
    ships them, Apache-2.0 / GSM8K MIT), each as one user message, label 0, kind `everyday`. The training script reads
    LLMRouter's train split and MT-Bench only; a test question that also appears in LLMRouter's train file (exactly,
    or by a run of 8 words) is dropped, and so are duplicates."""
    def lines(path: Path) -> list[str]:  # a file the shared/ folder lacks (a sample of it) adds nothing
        return [x for x in path.read_text(encoding="utf-8").split("\n") if x.strip()] if path.exists() else []

    train = [json.loads(line)["query"] for line in lines(shared / "llmrouter/query_data/default_query_train.jsonl")]
    seen_grams = set().union(*(_eight_grams(q) for q in train))
    seen = set(train)
    texts: list[tuple[str, str]] = []
    for line in lines(shared / "llmrouter/query_data/default_query_test.jsonl"):  # not splitlines: U+2028 in texts
        r = json.loads(line)
        texts.append((r["query"], f"llmrouter:{r['task_name']}"))
    for line in lines(shared / "routellm/evals/gsm8k/test.jsonl"):
        texts.append((json.loads(line)["question"], "gsm8k"))
    rows: list[Row] = []
    for text, source in texts:
        if text in seen or _eight_grams(text) & seen_grams:
            continue
        seen.add(text)
        rows.append({"messages": [_user(text)], "label": 0, "lang": "en", "kind": "everyday", "source": source})
    return rows
