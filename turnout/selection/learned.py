"""Learned selectors: estimators that predict, for a request embedding, how well each model will answer.
They pick argmax(predicted quality − cost_weight × normalised expected cost) among the decision's candidates,
so `cost_weight` is the one knob that trades quality for cost (0: quality only; never negative, which would
pay for the dearer model: see base.PENALTY_WEIGHTS).

A fitted selector saves to an artifact directory: `router.json` (name, params, models, data fingerprint,
encoder, version) and `state.npz` (the learned arrays, attributes ending in `_`)."""

from __future__ import annotations

import abc
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from turnout import __version__
from turnout.context import Choice, RoutingContext
from turnout.selection.base import Candidate, Selector, checked_params

ARTIFACT_FILE = "router.json"
STATE_FILE = "state.npz"
EXPECTED_OUTPUT_TOKENS = 256


def embedding_key(encoder: str) -> str:
    return f"embedding:{encoder}:last_user"


class LearnedSelector(Selector):
    needs_fit = True
    encoder = "minilm-static"

    # ----- the one method each algorithm writes ---------------------------------------------------------
    @abc.abstractmethod
    def _fit(self, x: np.ndarray, scores: np.ndarray, costs: np.ndarray) -> None:
        """Learn from prompt embeddings (n × d), scores and costs (n × models)."""

    @abc.abstractmethod
    def predict_quality(self, x: np.ndarray) -> np.ndarray:
        """Predicted quality (n × models) for prompt embeddings (n × d)."""

    def predict(self, prompts: Sequence[str] | None, x: np.ndarray) -> np.ndarray:
        """Predicted quality (n × models) for prompts with embeddings x: what `select` and `turnout eval` call.
        The text is there for routers with features beyond the embedding (`ensemble`); the others ignore it."""
        return self.predict_quality(x)

    # ----- shared -------------------------------------------------------------------------------------
    def fit(self, table: Any, x: np.ndarray | None = None) -> "LearnedSelector":
        from turnout.models.encoders import get_encoder

        if x is None:
            x = get_encoder(self.encoder).encode(table.prompts)
        self.models_ = list(table.models)
        self.fingerprint_ = table.fingerprint()
        self._fit(np.asarray(x, dtype=np.float32), np.asarray(table.scores, dtype=np.float64),
                  np.asarray(table.costs, dtype=np.float64))
        return self

    def select(self, ctx: RoutingContext, candidates: Sequence[Candidate]) -> Choice:
        vector = ctx.cache[embedding_key(self.encoder)]
        quality = self.predict([ctx.text("last_user")], np.asarray(vector)[None, :])[0]
        index = {m: i for i, m in enumerate(self.models_)}
        expected = np.array([c.cost.usd(ctx.token_estimate, EXPECTED_OUTPUT_TOKENS) for c in candidates])
        normalised = expected / max(float(expected.max()), 1e-12)
        scores = {c.name: float(quality[index[c.name]] - self.cost_weight * normalised[k])
                  for k, c in enumerate(candidates)}
        best = max(candidates, key=lambda c: scores[c.name]).name  # ties: first in the decision's list
        return Choice(best, scores, f"highest predicted quality{' net of cost' if self.cost_weight else ''} "
                                    f"({quality[index[best]]:.3f})")

    def check_models(self, names: Sequence[str]) -> list[str]:
        """Candidate names this selector was not trained on."""
        return [n for n in names if n not in getattr(self, "models_", [])]

    # ----- artifacts ------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {k: v for k, v in vars(self).items() if k.endswith("_") and isinstance(v, np.ndarray)}
        plain = {k: v for k, v in vars(self).items() if k.endswith("_") and not isinstance(v, np.ndarray)}
        np.savez_compressed(directory / STATE_FILE, **arrays)
        meta = {"name": self.name, "params": self.get_params(), "models": self.models_, "encoder": self.encoder,
                "fingerprint": self.fingerprint_, "turnout_version": __version__, "state": plain}
        (directory / ARTIFACT_FILE).write_text(json.dumps(meta, indent=2, default=float) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path, **overrides: Any) -> "LearnedSelector":
        directory = Path(directory)
        meta = json.loads((directory / ARTIFACT_FILE).read_text())
        if meta["name"] != cls.name:
            raise ValueError(f"{directory} holds a '{meta['name']}' router, not '{cls.name}'")
        selector = cls(**checked_params(cls, {**meta["params"], **overrides}, f"{directory / ARTIFACT_FILE}: params"))
        for key, value in meta["state"].items():
            setattr(selector, key, value)
        with np.load(directory / STATE_FILE, allow_pickle=False) as state:
            for key in state.files:
                setattr(selector, key, state[key])
        return selector


def normalise_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class Adam:
    """Full-batch Adam (β 0.9 / 0.999) updating numpy parameters in place: the learned selectors' data is a few
    thousand rows, so no framework is needed."""

    def __init__(self, params: list[np.ndarray], lr: float) -> None:
        self.params, self.lr, self.step = params, lr, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def update(self, grads: list[np.ndarray]) -> None:
        self.step += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            p -= self.lr * (m / (1 - 0.9 ** self.step)) / (np.sqrt(v / (1 - 0.999 ** self.step)) + 1e-8)
