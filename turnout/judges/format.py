"""The `format` judge: the answer has the shape the request asked for.

Fails (score 0) when the answer is empty, is a refusal (the message's `refusal` field, or a refusal phrase at
its start), was cut off (`finish_reason: length`, optional), does not parse against the request's
`response_format` (`json_schema` or `json_object`), or calls a tool that was not offered / with arguments that do
not parse against that tool's `parameters` schema, or calls none when `tool_choice` required one.

The schema check is a dependency-free subset of JSON Schema: the keywords OpenAI structured outputs accept
(type, properties, required, additionalProperties, items, enum, const, anyOf/oneOf/allOf, $ref into $defs,
minItems/maxItems, minimum/maximum, minLength/maxLength). Unknown keywords are ignored, never failed on."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import Field

from turnout.judges.base import (
    Judge,
    JudgeEnv,
    JudgeParams,
    Verdict,
    answer_message,
    answer_text,
    register,
)
from turnout.signals.base import off_loop

# lower-cased openings of answers that decline instead of answering
# The schema comes from the request and the answer from an upstream: either may be hostile. Nested anyOf/oneOf
# branches multiply (30 levels of two branches: 2^30 steps), a $ref may point back at itself. The check takes at
# most BASE_STEPS + STEPS_PER_CHAR × the checked text's length steps (about a microsecond each), so its time is
# linear in the answer whatever the schema; a check that runs out of steps, or nests past Python's recursion
# limit, fails the answer with a reason saying so. A long answer is checked off the event loop.
BASE_STEPS = 8_000
STEPS_PER_CHAR = 16
OFF_LOOP_CHARS = 2_000

REFUSALS = ("i'm sorry, but i can", "i am sorry, but i can", "sorry, i can't", "sorry, i cannot",
            "i can't help with", "i cannot help with", "i can't assist", "i cannot assist", "i'm unable to",
            "i am unable to", "i won't be able to", "as an ai language model, i can")


class FormatParams(JudgeParams):
    refusal_phrases: list[str] = Field(default_factory=lambda: list(REFUSALS),
                                       description="lower-cased openings that mark an answer as a refusal")
    fail_truncated: bool = True  # finish_reason "length": the answer was cut off
    min_chars: int = 1


@register("format")
class FormatJudge(Judge):
    Params = FormatParams
    default_threshold = 0.5

    async def judge(self, request: dict[str, Any], answer: dict[str, Any], env: JudgeEnv) -> Verdict:
        long = len(answer_text(answer)) > OFF_LOOP_CHARS or any(
            len(str((c.get("function") or {}).get("arguments") or "")) > OFF_LOOP_CHARS
            for c in answer_message(answer).get("tool_calls") or () if isinstance(c, dict))
        problem = await off_loop(self.problem, request, answer) if long else self.problem(request, answer)
        return self.verdict(0.0, reason=problem) if problem else self.verdict(1.0, reason="ok")

    def problem(self, request: dict[str, Any], answer: dict[str, Any]) -> str | None:
        p: FormatParams = self.params  # type: ignore[assignment]
        message = answer_message(answer)
        finish = ((answer.get("choices") or [{}])[0] or {}).get("finish_reason")
        if message.get("refusal"):
            return "refusal"
        if p.fail_truncated and finish == "length":
            return "truncated (finish_reason length)"
        calls = message.get("tool_calls") or []
        if calls:
            return _tool_problem(request, calls)
        choice = request.get("tool_choice")
        if request.get("tools") and (choice == "required" or isinstance(choice, dict)):
            return "no tool call although tool_choice requires one"
        text = answer_text(answer).strip()
        if len(text) < p.min_chars:
            return "empty answer"
        opening = text[:80].lower().replace("\u2019", "'")
        if any(opening.startswith(phrase) for phrase in p.refusal_phrases):
            return "refusal"
        return _format_problem(request.get("response_format"), text)


def _format_problem(response_format: Any, text: str) -> str | None:
    if not isinstance(response_format, dict) or response_format.get("type") not in ("json_schema", "json_object"):
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return f"not JSON: {exc}"
    if response_format["type"] == "json_object":
        return None if isinstance(value, dict) else "not a JSON object"
    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    return bounded_schema_problem(value, schema, len(text))


def _tool_problem(request: dict[str, Any], calls: list[dict[str, Any]]) -> str | None:
    offered = {t["function"]["name"]: t["function"].get("parameters") or {}
               for t in request.get("tools") or [] if isinstance(t, dict) and isinstance(t.get("function"), dict)}
    for call in calls:
        fn = call.get("function") or {}
        name = fn.get("name")
        if name not in offered:
            return f"tool '{name}' was not offered"
        try:
            args = orjson.loads(fn.get("arguments") or "{}")
        except orjson.JSONDecodeError as exc:
            return f"tool '{name}' arguments are not JSON: {exc}"
        problem = bounded_schema_problem(args, offered[name], len(fn.get("arguments") or "{}"))
        if problem:
            return f"tool '{name}': {problem}"
    return None


_TYPES: dict[str, Any] = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    cls = _TYPES.get(name)
    return True if cls is None else isinstance(value, cls)


class _OutOfSteps(Exception):
    pass


class Steps:
    """What a schema check may still spend (see BASE_STEPS)."""

    def __init__(self, left: int) -> None:
        self.left = left

    def take(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise _OutOfSteps


def bounded_schema_problem(value: Any, schema: Any, chars: int) -> str | None:
    """schema_problem with a step budget linear in the checked text's length (`chars`); running out of it, or
    recursing too deep, is a problem too."""
    steps = BASE_STEPS + STEPS_PER_CHAR * chars
    try:
        return schema_problem(value, schema, schema if isinstance(schema, dict) else {}, "$", Steps(steps))
    except _OutOfSteps:
        return f"$: the schema check gave up after {steps} steps (nested anyOf/oneOf or a $ref cycle)"
    except RecursionError:
        return "$: the schema check gave up: the schema or the answer nests too deep"


def schema_problem(value: Any, schema: Any, root: dict[str, Any], at: str, steps: Steps | None = None) -> str | None:
    """The first way `value` breaks `schema` (a subset of JSON Schema), or None. `steps`, when given, bounds the
    work (raises _OutOfSteps when spent)."""
    if not isinstance(schema, dict):
        return None
    if steps is not None:
        steps.take()
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return schema_problem(value, target, root, at, steps)
    kinds = schema.get("type")
    if kinds is not None:
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if not any(_is_type(value, k) for k in kinds):
            return f"{at}: expected {' or '.join(kinds)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{at}: not one of {schema['enum']}"
    if "const" in schema and value != schema["const"]:
        return f"{at}: expected {schema['const']!r}"
    for key in ("anyOf", "oneOf"):
        if key in schema and all(schema_problem(value, s, root, at, steps) for s in schema[key]):
            return f"{at}: matches none of {key}"
    for sub in schema.get("allOf") or []:
        if problem := schema_problem(value, sub, root, at, steps):
            return problem
    if isinstance(value, dict):
        return _object_problem(value, schema, root, at, steps)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            return f"{at}: {len(value)} items out of bounds"
        for i, item in enumerate(value):
            if problem := schema_problem(item, schema.get("items"), root, f"{at}[{i}]", steps):
                return problem
    if isinstance(value, str) and not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
        return f"{at}: length {len(value)} out of bounds"
    low, high = schema.get("minimum"), schema.get("maximum")
    if _is_type(value, "number") and ((low is not None and value < low) or (high is not None and value > high)):
        return f"{at}: {value} out of bounds"
    return None


def _object_problem(value: dict[str, Any], schema: dict[str, Any], root: dict[str, Any], at: str,
                    steps: Steps | None) -> str | None:
    props = schema.get("properties") or {}
    for key in schema.get("required") or []:
        if key not in value:
            return f"{at}.{key}: required but missing"
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if key not in props and extra is False:
            return f"{at}.{key}: not allowed (additionalProperties false)"
        if problem := schema_problem(item, props.get(key, extra), root, f"{at}.{key}", steps):  # a bool schema: none
            return problem
    return None
