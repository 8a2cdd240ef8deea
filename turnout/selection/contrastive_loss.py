"""RouterDC's two contrastive losses (Chen et al., NeurIPS 2024) and their gradients, in numpy.

The query embedding is q = normalise(x W) (x: the frozen sentence embedding; W: the learned projection that
stands in for the paper's fine-tuned mDeBERTa) and each model has a learned embedding k_m, f_m = normalise(k_m).

- sample–LLM: for each of a query's positives p (its `top_k` best models),
  −log( e^{s_p} / (e^{s_p} + Σ_{n ∈ negatives} e^{s_n}) ), s = q·f / temperature, summed over positives and
  averaged over the batch (the paper's code: a positive that scored 0 and a negative that scored above ½ are
  masked out; generalised here to "no better than the row's worst" and "no worse than its best");
- sample–sample: for each query, one other query of its k-means cluster is the positive and H queries of other
  clusters are negatives: −log( e^{c_+} / (e^{c_+} + Σ e^{c_−}) ), c = cosine of the two queries' embeddings
  (no temperature, as in the paper's code), averaged over the queries that have both;
- loss = sample–LLM + λ · sample–sample."""

from __future__ import annotations

import numpy as np


def contrastive_masks(scores: np.ndarray, top_k: int, last_k: int, rng: np.random.Generator | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative (prompt, model) masks: the top_k best and last_k worst of each row (each at most
    half the models), a positive strictly better than the row's worst and a negative strictly worse than its
    best. Ties in the ranking are broken at random when `rng` is given (the paper's sort breaks them by model
    order, which with 0/1 scores would make the first-listed of the models that answered the only positives)."""
    m = scores.shape[1]
    k_top, k_last = max(1, min(top_k, m // 2)), max(1, min(last_k, m // 2))
    jitter = rng.random(scores.shape) if rng is not None else np.zeros(scores.shape)
    order = np.argsort(-scores + 1e-9 * jitter, axis=1, kind="stable")  # the jitter only reorders ties
    rank = np.argsort(order, axis=1)
    positive = (rank < k_top) & (scores > scores.min(axis=1, keepdims=True))
    negative = (rank >= m - k_last) & (scores < scores.max(axis=1, keepdims=True))
    return positive, negative


def sample_pairs(clusters: np.ndarray, hard: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """For each row of a batch: one other row of its cluster (−1 when it has none) and `hard` rows of other
    clusters (rows without enough of either get −1 and are left out of the sample–sample loss)."""
    b = len(clusters)
    same = (clusters[:, None] == clusters[None, :]) & ~np.eye(b, dtype=bool)
    keys = rng.random((b, b))
    positive = np.where(same, keys, -1.0).argmax(axis=1)  # a uniform pick among the row's cluster-mates
    other_keys = np.where(same | np.eye(b, dtype=bool), -1.0, keys)
    negatives = np.argsort(-other_keys, axis=1)[:, :hard]  # `hard` uniform picks among other clusters
    ok = same.any(axis=1) & ((~same & ~np.eye(b, dtype=bool)).sum(axis=1) >= hard)
    return np.where(ok, positive, -1), np.where(ok[:, None], negatives, -1)


def _normalise(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norms = np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    return z / norms, norms


def _normalise_backward(unit: np.ndarray, norms: np.ndarray, grad_unit: np.ndarray) -> np.ndarray:
    """Gradient through unit = z / |z|."""
    return (grad_unit - unit * (unit * grad_unit).sum(axis=1, keepdims=True)) / norms


def _info_nce(logits_pos: np.ndarray, logits_neg: np.ndarray, neg_mask: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row −log(e^{a} / (e^{a} + Σ_masked e^{b})) and its gradients w.r.t. a and each b."""
    top = np.maximum(logits_pos, np.where(neg_mask, logits_neg, -np.inf).max(axis=1))
    ea = np.exp(logits_pos - top)
    eb = np.where(neg_mask, np.exp(logits_neg - top[:, None]), 0.0)
    denominator = ea + eb.sum(axis=1)
    return -np.log(ea / denominator), ea / denominator - 1, eb / denominator[:, None]


def dual_contrastive_loss(w: np.ndarray, k: np.ndarray, x: np.ndarray, positive: np.ndarray, negative: np.ndarray,
                          pair_pos: np.ndarray, pair_neg: np.ndarray, temperature: float, weight: float
                          ) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(sample–LLM loss, sample–sample loss, gradient of their sum with `weight` on the second w.r.t. W and
    w.r.t. the model embeddings k) for one batch x with its masks and sampled pairs."""
    b = len(x)
    q, q_norms = _normalise(x @ w)
    f, f_norms = _normalise(k)
    s = q @ f.T / temperature
    grad_s = np.zeros_like(s)
    llm_loss = 0.0
    for j in range(s.shape[1]):  # each model as the positive, against the row's negatives
        rows = np.flatnonzero(positive[:, j])
        if not len(rows):
            continue
        loss, g_pos, g_neg = _info_nce(s[rows, j], s[rows], negative[rows])
        llm_loss += loss.sum() / b
        grad_s[rows, j] += g_pos / b
        grad_s[rows] += g_neg / b
    grad_q = grad_s @ f / temperature
    grad_f = grad_s.T @ q / temperature
    sample_loss = 0.0
    valid = np.flatnonzero(pair_pos >= 0)
    if len(valid):
        c = q @ q.T
        loss, g_pos, g_neg = _info_nce(c[valid, pair_pos[valid]], c[valid[:, None], pair_neg[valid]],
                                       np.ones(pair_neg[valid].shape, dtype=bool))
        sample_loss = float(loss.mean())
        scale = weight / len(valid)
        grad_c = np.zeros((b, b))
        np.add.at(grad_c, (valid, pair_pos[valid]), scale * g_pos)
        np.add.at(grad_c, (np.repeat(valid, pair_neg.shape[1]), pair_neg[valid].ravel()), scale * g_neg.ravel())
        grad_q += (grad_c + grad_c.T) @ q  # c_ij = q_i · q_j
    grad_w = x.T @ _normalise_backward(q, q_norms, grad_q)
    grad_k = _normalise_backward(f, f_norms, grad_f)
    return float(llm_loss), sample_loss, grad_w, grad_k
