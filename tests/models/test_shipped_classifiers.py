"""The shipped domain classifier against its documentation and its data: the documented domains are the model's
classes and a real server accepts each of them; the task → domain mapping drops no task of the data; the
published held-out metrics are what the shipped models score."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import base_config
from tests.process import turnout_process
from turnout.eval.signal_data import (
    LLMROUTER_TASK_DOMAINS,
    LLMROUTER_TASKS_WITHOUT_DOMAIN,
    MMLU_SUBJECT_DOMAINS,
    task_domain,
)
from turnout.models.classifier import load_classifier

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
LOGIC_GRID = ("Q: There are 3 houses in a row, numbered 1 on the left to 3 on the right. There is one person living "
              "in each house. The people in these houses have different characteristics: - Each person has a "
              "different flower: one has roses, one has tulips, one has daisies. Clue 1: the person who has roses "
              "lives directly left of the person with tulips. Clue 2: the daisy owner is not in house 1. "
              "What is the number of the house where the person who has roses lives?")


def documented_domains() -> list[str]:
    row = next(line for line in (ROOT / "docs/signals.md").read_text().splitlines() if line.startswith("| `domain`"))
    found = re.search(r"domains: ([a-z_]+(?:, [a-z_]+)*)", row)
    assert found, row
    return [d.strip() for d in found.group(1).split(",")]


def test_the_documented_domains_are_the_shipped_model_classes_and_the_mapping_targets():
    documented = documented_domains()
    assert len(documented) == len(set(documented)) == 11
    assert sorted(load_classifier("builtin:domain").labels) == sorted(documented)
    assert set(LLMROUTER_TASK_DOMAINS.values()) | set(MMLU_SUBJECT_DOMAINS) == set(documented)


def test_a_real_server_accepts_every_documented_domain_and_routes_a_logic_puzzle_to_reasoning(upstream, tmp_path):
    config = base_config(upstream.url)
    config["signals"] = {"reasoning": {"kind": "domain", "domains": ["reasoning"]},
                         "any_domain": {"kind": "domain", "domains": documented_domains(), "min_confidence": 0}}
    config["decisions"] = [
        {"name": "puzzles", "priority": 60, "when": {"signal": "reasoning"}, "models": ["strong"]},
        {"name": "classified", "priority": 50, "when": {"signal": "any_domain"}, "models": ["small"]},
        {"name": "default", "priority": 0, "models": ["small"]},
    ]
    with turnout_process(config, tmp_path) as server:
        answer = httpx.post(f"{server.url}/v1/route", timeout=30,
                            json={"model": "auto", "messages": [{"role": "user", "content": LOGIC_GRID}]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["decision"] == "puzzles", answer.json()


def test_an_undocumented_domain_is_a_config_error_naming_the_known_ones():
    from turnout.config import ConfigError, parse_config
    from turnout.pipeline import Router

    config = base_config("http://127.0.0.1:9")
    config["signals"]["topic"] = {"kind": "domain", "domains": ["astrology"]}
    with pytest.raises((ConfigError, ValueError), match="astrology.*reasoning"):
        Router.build(parse_config(config))


def test_every_task_name_in_the_mapping_is_a_real_task():
    # the data's names as LLMRouter's routing_scores_merged.csv spells them (checked against the file below)
    tasks = {"agentverse-logicgrid", "agentverse-mgsm", "arc_challenge", "commongen", "commonsense_qa", "gpqa",
             "gsm8k", "human_eval", "math", "mbpp", "mmlu", "natural_qa", "openbook_qa", "trivia_qa"}
    assert set(LLMROUTER_TASK_DOMAINS) | set(LLMROUTER_TASKS_WITHOUT_DOMAIN) == tasks
    with pytest.raises(ValueError, match="has no domain"):
        task_domain("logicgrid")  # the shortened name the mapping once used: an error now, not a silent drop


# the sample shipped for clones (it holds every task and subject), always: a missing sample fails, never skips;
# and the full data where it is checked out
DATA_ROOTS = [pytest.param(ROOT / "tests/data/shared", id="shipped-sample")] + \
    ([pytest.param(SHARED, id="full")] if SHARED.exists() else [])


@pytest.mark.parametrize("root", DATA_ROOTS)
def test_the_mapping_drops_no_task_of_the_data(root):
    with (root / "llmrouter/routing_scores_merged.csv").open(newline="", encoding="utf-8") as f:
        tasks = {row["task_name"] for row in csv.DictReader(f)}
    assert len(tasks) == 14
    dropped = {t for t in tasks if task_domain(t) is None}
    assert dropped == set(LLMROUTER_TASKS_WITHOUT_DOMAIN)
    subjects = {p.stem[len("mmlu_"):] for p in (root / "routellm/evals/mmlu/responses").glob("mmlu_*.csv")}
    assert subjects and subjects == {s for group in MMLU_SUBJECT_DOMAINS.values() for s in group}


# the sample holds every held-out row of each task (see its README), so it must give the published figures exactly
@pytest.mark.parametrize("root", DATA_ROOTS)
def test_the_published_held_out_metrics_are_those_of_the_shipped_models(root):
    from turnout.eval.signals_report import TASKS, evaluate_classifier

    published = json.loads((ROOT / "turnout/models/data/classifier_metrics.json").read_text())
    for task, loader in TASKS.items():
        _, test = loader(root)
        assert evaluate_classifier(task, load_classifier(f"builtin:{task}"), test) == published[task], task
    assert published["domain"]["per_label_rows"]["reasoning"] > 0


def test_the_shipped_models_read_ngrams_and_serve_what_evaluation_scores():
    import numpy as np

    from turnout.models.encoders import get_encoder

    texts = [LOGIC_GRID, "What is the derivative of x^2 sin x?", "Which court hears appeals on tort claims?"]
    for name in ("domain", "complexity"):
        model = load_classifier(f"builtin:{name}")
        assert model.uses_text and model.meta["selection"]["C"] in (4.0, 16.0)
        vectors = get_encoder(model.encoder).encode(texts)
        one_by_one = np.array([model.proba(v, t) for v, t in zip(vectors, texts)])
        assert np.allclose(one_by_one, model.proba_texts(texts), atol=1e-5)
        assert np.allclose(one_by_one.sum(axis=1), 1.0, atol=1e-5)
        with pytest.raises(ValueError, match="pass the text"):
            model.predict(vectors[0])
    assert load_classifier("builtin:domain").predict(vectors[0], texts[0])[0] == "reasoning"


def test_the_embedding_only_models_they_replaced_still_load_and_serve():
    from turnout.eval.signals_report import BASELINES

    for name in ("domain", "complexity"):
        old = load_classifier(str(BASELINES / f"{name}.npz"))
        assert not old.uses_text and old.groups is None
        label, p, probs = old.predict(np.zeros(old.coef.shape[1], dtype=np.float32))
        assert label in old.labels and 0 < p <= 1 and abs(sum(probs.values()) - 1) < 1e-5


def test_the_published_cross_dataset_check_and_no_jailbreak_entry():
    # jailbreak is trained and reported by its own script now (turnout.eval.injection_report)
    published = json.loads((ROOT / "turnout/models/data/classifier_metrics.json").read_text())
    assert "jailbreak" not in published
    cross = published["domain_cross_dataset"]
    assert set(cross) == {f"{model}without_{source}_scored_on_{source}" for model in ("", "baseline_")
                          for source in ("mmlu", "llmrouter")}
    for report in cross.values():
        assert report["test_rows"] > 100 and set(report["per_label_rows"]) <= {"math", "code", "science", "general"}
