"""CPU time of the request path's text and body handling on hostile inputs at the server's limits (8 MiB body,
2,048 messages, 8,192 parts), one row per (module, input): a table, and JSON with --out. Nothing is asserted: a
row far above ~10 ms for code that runs on the event loop is a finding.

    .venv/bin/python scripts/audit/hostile_inputs.py [--out bench-out/hostile_inputs.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

LIMIT = 8 * 1024 * 1024


def cpu_ms(fn: Callable[[], Any]) -> float:
    start = time.process_time()
    with contextlib.suppress(Exception):  # a refusal is an answer too; its cost is what is measured
        fn()
    return (time.process_time() - start) * 1e3


def answer(text: str) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}


def nested_any_of(depth: int) -> dict[str, Any]:
    defs = {f"A{i}": {"anyOf": [{"$ref": f"#/$defs/A{i + 1}"}, {"$ref": f"#/$defs/A{i + 1}"}]} for i in range(depth)}
    return {"$ref": "#/$defs/A0", "$defs": {**defs, f"A{depth}": {"type": "string"}}}


def rows() -> list[tuple[str, str, Callable[[], Any]]]:
    from turnout.doors.chat_schema import check_chat_request
    from turnout.doors.messages_wire import check_request, to_chat
    from turnout.judges import build_judge
    from turnout.judges.consistency import closed_answer
    from turnout.judges.grounded import Support
    from turnout.plugins.same_question import same_question
    from turnout.signals.fact_check import fact_check_score
    from turnout.signals.modality import requested_outputs

    fmt = build_judge({"name": "format"}, "j")
    schema = {"messages": [], "response_format": {"type": "json_schema", "json_schema": {"schema": nested_any_of(40)}}}
    letters = "abcdefghijklmnopqrstuvwxyz"
    shared4 = [" ".join("abcd" + letters[i % 26] + letters[i // 26 % 26] + letters[i // 676 % 26]
                        for i in range(k, k + 1000)) for k in (0, 1000)]
    parts = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}] * 4}] * 2048}
    ones = {"model": "m", "messages": [{"role": "user", "content": [1] * (LIMIT // 2)}]}
    blocks = {"model": "m", "max_tokens": 5,
              "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}] * 4}] * 2048}
    grounded = Support(build_judge({"name": "grounded"}, "j").params, "The Alpha rose 5 percent in 2020. " * 2000)
    return [
        ("judges.consistency", "'=' + 1,000,000 spaces", lambda: closed_answer("=" + " " * 1_000_000 + "x")),
        ("judges.format", "40 nested anyOf levels", lambda: asyncio.run(fmt.judge(schema, answer("1"), None))),
        ("judges.grounded", "256 claims x 2,000 sentences",
         lambda: grounded.score(["Bravo Charlie Delta went up by 7 points here."] * 256)),
        ("plugins.same_question", "2 x 1,000 words sharing 4 letters", lambda: same_question(*shared4)),
        ("doors.chat_schema", "2,048 messages x 4 parts (the limit)", lambda: check_chat_request(parts)),
        ("doors.chat_schema", "4 million non-object parts, no count limit", lambda: cpu_ms(lambda: check_chat_request(ones))),
        ("doors.messages_wire", "2,048 messages x 4 blocks", lambda: to_chat(blocks, check_request(blocks))),
        ("signals.fact_check", "2.8 million U+FDFA", lambda: fact_check_score("\ufdfa" * (LIMIT // 3))),
        ("signals.modality", "2.8 million U+FDFA", lambda: requested_outputs("\ufdfa" * (LIMIT // 3))),
        ("signals.modality", "'draw.' x 1.6 million", lambda: requested_outputs("draw." * (LIMIT // 5))),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args()
    results = []
    print(f"{'module':24s} {'input':40s} {'CPU ms':>8s}")
    for module, what, fn in rows():
        fn()  # warm: lazy model loads and caches are not the cost measured
        ms = min(cpu_ms(fn) for _ in range(3))
        results.append({"module": module, "input": what, "cpu_ms": round(ms, 2)})
        print(f"{module:24s} {what:40s} {ms:8.1f}", flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
