"""The fact_check and modality figures docs/signals.md publishes are what the signals score: on the shipped
sample of ../shared/data (it holds every LLMRouter test row) and on the hand-written splits."""

from __future__ import annotations

from pathlib import Path

from turnout.eval.signals_report import evaluate_fact_check, evaluate_modality

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "shared"


def test_the_published_fact_check_figures():
    report = evaluate_fact_check(SAMPLE)
    final, llmrouter = report["hand_written_final"], report["llmrouter_test"]
    assert (final["rows"], final["accuracy"], final["f1"], final["accuracy_ci95"]) == (54, 0.9815, 0.9825,
                                                                                      [0.9023, 0.9967])
    assert (llmrouter["rows"], llmrouter["accuracy"], llmrouter["f1"], llmrouter["auc"]) == (331, 0.9094, 0.8585,
                                                                                             0.9641)
    assert report["hand_written_dev"]["rows"] == 55


def test_the_published_modality_figures():
    report = evaluate_modality(SAMPLE)
    assert report["hand_written_final"]["rows"] == 36 and report["hand_written_final"]["exact_accuracy"] == 1.0
    for modality in ("image", "audio", "video"):
        assert report["hand_written_final"][modality]["f1"] == 1.0
    assert report["llmrouter_test"]["rows"] == 381 and report["llmrouter_test"]["false_alarms"] == 0


def test_the_hand_written_splits_are_disjoint_and_hold_every_label():
    from turnout.eval.signal_data import hand_written

    for name, key, labels in (("fact_check", "label", {0, 1}), ("modality", "output", {"image", "audio", "video",
                                                                                      "none"})):
        dev, final = hand_written(name, "dev"), hand_written(name, "final")
        assert not {r["text"] for r in dev} & {r["text"] for r in final}
        for split in (dev, final):
            assert {r[key] for r in split} == labels and len({r["lang"] for r in split}) >= 4
