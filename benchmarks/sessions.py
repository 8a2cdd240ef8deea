"""Session stickiness on multi-turn conversations: model switches per conversation with and without it, and what
it costs in quality (issue 13).

    python benchmarks/sessions.py --json bench-out/sessions.json [--shared ../shared/data] [--repeat 200]

Every turn goes through a real Router (signals, decisions, selectors, stickiness; no backend is called) built
from one config, once with `stickiness: {mode: session}` on every decision and once without. The policy
changes its mind from turn to turn on its own: the default decision's selector is `random` (seeded by the
request id) or the learned `builtin:gsm8k-svm` (which reads each turn's last user message; its cost weight set
so that it splits MT-Bench's turns about evenly, see POLICIES), and a `followup`
keyword decision (priority 50, strong model only) fires on revision requests ("previous", "rewrite", "again",
...), which 17 of MT-Bench's 80 second turns are and 3 first turns. A `traceback` decision (priority 60, strong
only, scope all) fires once a tool result reported a Python traceback.

Conversations:
- MT-Bench: the 72 uncontaminated two-turn questions of the shared RouteLLM data (GPT-4 vs Mixtral-8x7B); the
  quality of a turn is the GPT-4 judge's 1-10 score of the chosen model on that turn (judgements.jsonl).
  Caveat: a turn-2 score judges a model answering after its own turn 1; after a switch the real turn 2 would
  follow the other model's turn 1, which the data does not have.
- Synthetic tool loops (`--repeat` of them, seeded): a user task from 8 templates, then 1 to 5 tool rounds (an assistant
  turn calling one of 5 tools, then its result; 15 % of results are a Python traceback), then the final answer
  and, for half of them, a follow-up user question. Every request (after the user's message and after each
  tool result) is routed. There is no judged quality for these: they report switches, and switches inside a
  tool loop (a plan handed to a model that did not make it).

Intervals: 95 % percentile bootstrap over conversations (turnout/eval/bootstrap.py's resample count and seed),
paired: the same resamples for the sticky and the free run, so the quality difference has its own interval."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _load import bench_args
from rich.console import Console
from rich.table import Table

from turnout.config import parse_config
from turnout.context import Caller, RoutingContext
from turnout.eval.bootstrap import RESAMPLES, SEED, percentile_intervals
from turnout.eval.datasets import ROUTELLM_PRICES, STRONG, WEAK
from turnout.pipeline import Router

FOLLOWUP_WORDS = ["previous", "rewrite", "revise", "what if", "again"]
POLICIES = {"random": {"name": "random", "params": {"seed": 13}},
            # cost_weight 0.22 (the artifact's is 0.17, calibrated on GSM8K): chosen here, on MT-Bench itself, so
            # that the svm splits MT-Bench's turns about evenly (55 % strong) and has choices to change
            "svm": {"name": "svm", "artifact": "builtin:gsm8k-svm", "params": {"cost_weight": 0.22}}}
JUDGED = {"gpt-4-1106-preview": STRONG, "mistralai/Mixtral-8x7B-Instruct-v0.1": WEAK}


def config(policy: str, sticky: bool, namespace: str) -> dict[str, Any]:
    stickiness = {"stickiness": {"mode": "session", "key": ["header"]}} if sticky else {}
    return {
        "models": {m: {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "unused",
                       "cost": {"input": ROUTELLM_PRICES[m][0], "output": ROUTELLM_PRICES[m][1]}}
                   for m in (STRONG, WEAK)},
        "signals": {"followup": {"kind": "keyword", "words": FOLLOWUP_WORDS},
                    "traceback": {"kind": "keyword", "words": ["Traceback (most recent call last)"], "scope": "all"}},
        "decisions": [
            {"name": "traceback", "priority": 60, "when": {"signal": "traceback"}, "models": [STRONG], **stickiness},
            {"name": "followup", "priority": 50, "when": {"signal": "followup"}, "models": [STRONG], **stickiness},
            {"name": "default", "priority": 0, "models": [STRONG, WEAK], "algorithm": POLICIES[policy],
             **stickiness},
        ],
        "state": {"store": "memory", "namespace": namespace},
    }


# ----- conversations ---------------------------------------------------------------------------------------------
def mt_bench(shared: Path) -> tuple[list[dict[str, Any]], dict[tuple[int, str, int], float]]:
    base = shared / "routellm/evals/mt_bench"
    bad = {json.loads(line)["eval_prompt"] for line in (base / "contaminated_prompts.jsonl").open(encoding="utf-8")}
    questions = [json.loads(line) for line in (base / "question.jsonl").open(encoding="utf-8")]
    scores: dict[tuple[int, str, int], float] = {}
    for j in map(json.loads, (base / "judgements.jsonl").open(encoding="utf-8")):
        if j["model"] in JUDGED and j["score"] >= 0:
            scores[(j["question_id"], JUDGED[j["model"]], j["turn"])] = float(j["score"])
    keep = [q for q in questions if not set(q["turns"]) & bad
            and all((q["question_id"], m, t) in scores for m in (STRONG, WEAK) for t in (1, 2))]
    return keep, scores


def mt_requests(question: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """The messages of each turn: the history is resent (the assistant's words are a placeholder: routing reads
    the user's turns; the judged answers are not in the data)."""
    first, second = question["turns"]
    return [[{"role": "user", "content": first}],
            [{"role": "user", "content": first}, {"role": "assistant", "content": "(the first answer)"},
             {"role": "user", "content": second}]]


TASKS = ["What's the weather in {city} tomorrow, and should I pack an umbrella?",
         "Book a table for four in {city} on Friday evening.",
         "Find the three cheapest flights from {city} to Lisbon next month.",
         "Run the unit tests of the {city} service and tell me what failed.",
         "Summarise the open issues labelled 'bug' in the {city} repository.",
         "Convert 250 EUR to JPY at today's rate and add it to my {city} trip budget.",
         "Check my calendar for conflicts with the {city} offsite and propose a new time.",
         "Look up the population of {city} and compare it with its 2000 census."]
TOOLS = ["get_weather", "search_web", "run_python", "calendar_lookup", "http_get"]
CITIES = ["Paris", "Osaka", "Lagos", "Quito", "Oslo", "Perth", "Izmir", "Hanoi"]
TRACEBACK = "Traceback (most recent call last):\n  File \"main.py\", line 3\nKeyError: 'rate'"


def tool_loops(n: int, seed: int = 0) -> list[list[list[dict[str, Any]]]]:
    """Each conversation as the list of request bodies' messages, in order (see the module's docstring)."""
    rng = random.Random(seed)
    out = []
    for c in range(n):
        messages: list[dict[str, Any]] = [{"role": "system", "content": "You are an agent with tools."},
                                          {"role": "user", "content": rng.choice(TASKS).format(city=rng.choice(CITIES))}]
        requests = [list(messages)]
        for r in range(rng.randint(1, 5)):
            call_id = f"call_{c}_{r}"
            messages.append({"role": "assistant", "content": None, "tool_calls": [{
                "id": call_id, "type": "function",
                "function": {"name": rng.choice(TOOLS), "arguments": json.dumps({"step": r})}}]})
            result = TRACEBACK if rng.random() < 0.15 else json.dumps({"ok": True, "value": rng.randint(1, 999)})
            messages.append({"role": "tool", "tool_call_id": call_id, "content": result})
            requests.append(list(messages))
        if rng.random() < 0.5:
            messages += [{"role": "assistant", "content": "Done: here is what I found."},
                         {"role": "user", "content": "Thanks. Could you also do it for next week?"}]
            requests.append(list(messages))
        out.append(requests)
    return out


# ----- routing ---------------------------------------------------------------------------------------------------
async def route_conversations(router: Router, conversations: list[list[list[dict[str, Any]]]], tag: str
                              ) -> list[list[dict[str, Any]]]:
    """Each turn's model, decision, and whether it was a switch (and inside a tool loop)."""
    out = []
    for c, requests in enumerate(conversations):
        turns, previous = [], None
        for t, messages in enumerate(requests):
            ctx = RoutingContext({"model": "auto", "messages": messages}, headers={"x-session-id": f"{tag}-{c}"},
                                 caller=Caller(key_id="bench"), request_id=f"{tag}:{c}:{t}")
            route = await router.route(ctx)
            in_loop = messages[-1].get("role") == "tool"
            turns.append({"model": route.model, "decision": route.decision, "in_loop": in_loop,
                          "switch": previous is not None and route.model != previous,
                          "reason": route.sticky.switch if route.sticky is not None else None})
            previous = route.model
        out.append(turns)
    return out


def per_conversation(routed: list[list[dict[str, Any]]], quality: list[list[float]] | None) -> dict[str, np.ndarray]:
    """Per-conversation arrays: switches, switches inside a tool loop, strong share, mean turn score."""
    out = {"switches": np.array([sum(t["switch"] for t in c) for c in routed], dtype=float),
           "loop_switches": np.array([sum(t["switch"] and t["in_loop"] for t in c) for c in routed], dtype=float),
           "strong_share": np.array([np.mean([t["model"] == STRONG for t in c]) for c in routed])}
    if quality is not None:
        out["score"] = np.array([np.mean(q) for q in quality])
    return out


def bootstrap(sticky: dict[str, np.ndarray], free: dict[str, np.ndarray]) -> dict[str, Any]:
    """Means and paired 95 % intervals over conversations, the sticky − free differences included."""
    n = len(next(iter(sticky.values())))
    rng = np.random.default_rng(SEED)
    draws = rng.integers(0, n, size=(RESAMPLES, n))
    keys = list(sticky)

    def stats(idx: np.ndarray | slice) -> dict[str, float]:
        row = {f"sticky_{k}": float(sticky[k][idx].mean()) for k in keys}
        row |= {f"free_{k}": float(free[k][idx].mean()) for k in keys}
        row |= {f"delta_{k}": row[f"sticky_{k}"] - row[f"free_{k}"] for k in keys}
        return row

    point = stats(slice(None))
    ci = percentile_intervals([stats(d) for d in draws])
    return {k: {"mean": round(v, 4), "ci95": ci[k]} for k, v in point.items()}


async def measure(policy: str, name: str, conversations: list[Any], quality_of: Any) -> dict[str, Any]:
    runs = {}
    for sticky in (True, False):
        # a fresh namespace each run: memory stores outlive a Router (they are kept across reloads)
        router = Router.build(parse_config(config(policy, sticky, f"bench-sessions-{uuid.uuid4().hex}")))
        runs[sticky] = await route_conversations(router, conversations, f"{name}")
    quality = {s: quality_of(r) if quality_of else None for s, r in runs.items()}
    result = bootstrap(per_conversation(runs[True], quality[True]), per_conversation(runs[False], quality[False]))
    reasons: dict[str, int] = {}
    for c in runs[True]:
        for t in c:
            if t["switch"]:
                reasons[t["reason"] or "none"] = reasons.get(t["reason"] or "none", 0) + 1
    return {"conversations": len(conversations), "turns": sum(len(c) for c in conversations),
            "metrics": result, "sticky_switch_reasons": reasons}


def mt_quality(questions: list[dict[str, Any]], scores: dict) -> Any:
    def of(routed: list[list[dict[str, Any]]]) -> list[list[float]]:
        return [[scores[(q["question_id"], t["model"], i + 1)] for i, t in enumerate(c)]
                for q, c in zip(questions, routed)]
    return of


def show(report: dict[str, Any]) -> None:
    table = Table(title="Session stickiness: switches per conversation and quality (95 % bootstrap CI)")
    for col in ("data", "policy", "turns", "switches/conv free", "switches/conv sticky", "in-loop free",
                "in-loop sticky", "score free", "score sticky", "Δ score", "strong share free → sticky"):
        table.add_column(col)

    def cell(m: dict[str, Any], key: str) -> str:
        if key not in m:
            return "—"
        lo, hi = m[key]["ci95"]
        return f"{m[key]['mean']:.3f} [{lo:.3f}, {hi:.3f}]"

    for data, by_policy in report["results"].items():
        for policy, r in by_policy.items():
            m = r["metrics"]
            table.add_row(data, policy, str(r["turns"]), cell(m, "free_switches"), cell(m, "sticky_switches"),
                          cell(m, "free_loop_switches"), cell(m, "sticky_loop_switches"), cell(m, "free_score"),
                          cell(m, "sticky_score"), cell(m, "delta_score"),
                          f"{m['free_strong_share']['mean']:.2f} → {m['sticky_strong_share']['mean']:.2f}")
    Console(width=220).print(table)


def main() -> None:
    args = bench_args(__doc__, 200)  # --repeat: the number of synthetic tool loops
    questions, scores = mt_bench(args.shared)
    mt = [mt_requests(q) for q in questions]
    loops = tool_loops(args.repeat)
    report: dict[str, Any] = {"about": __doc__.split("\n\n")[0], "followup_words": FOLLOWUP_WORDS,
                              "bootstrap": {"resamples": RESAMPLES, "seed": SEED, "over": "conversations"},
                              "results": {"mt-bench": {}, "tool-loops": {}}}
    for policy in POLICIES:
        report["results"]["mt-bench"][policy] = asyncio.run(measure(policy, "mt", mt, mt_quality(questions, scores)))
        report["results"]["tool-loops"][policy] = asyncio.run(measure(policy, "loop", loops, None))
    show(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
