"""JSON Schema (what OpenAI tools and response_format carry) cut down to the OpenAPI subset that Gemini's
`parameters` and `responseSchema` accept.

Gemini answers 400 to a schema with a key outside that subset ("Invalid JSON payload received. Unknown name
\"additionalProperties\"", "... \"$schema\""), to `"type": ["string", "null"]`, to an enum of numbers, to a string
`format` other than enum/date-time, and to an OBJECT whose `properties` is present but empty. So:
  - `$ref` is replaced by the `$defs`/`definitions` entry it names (cycles cut at a fixed depth);
  - `type: [x, "null"]` becomes `type: x, nullable: true`; `const` becomes a one-value `enum`; `oneOf` is `anyOf`;
  - `allOf` of object schemas is merged into one;
  - a non-string `enum` is moved into the description; an unsupported `format` is dropped;
  - every other key not in KEPT is dropped: additionalProperties, $schema, $id, $comment, $defs, definitions,
    strict, examples, exclusiveMinimum/Maximum, multipleOf, patternProperties, unevaluatedProperties,
    dependentRequired, if/then/else, not, contentEncoding, contentMediaType, readOnly, writeOnly, deprecated.
"""

from __future__ import annotations

from typing import Any

KEPT = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "items", "minItems", "maxItems",
    "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern",
    "example", "anyOf", "propertyOrdering", "default", "minimum", "maximum",
})
FORMATS = {"string": {"enum", "date-time"}, "integer": {"int32", "int64"}, "number": {"float", "double"}}
MAX_REF_DEPTH = 8  # a recursive $ref (a tree of nodes) is unrolled this deep, then left as a bare object


def clean_schema(schema: Any) -> Any:
    """`schema` in the subset Gemini accepts (see the module's docstring); the input is not modified."""
    if not isinstance(schema, dict):
        return schema
    defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    return _clean(schema, defs, 0)


def _resolve(ref: str, defs: dict[str, Any]) -> Any:
    for prefix in ("#/$defs/", "#/definitions/"):
        if ref.startswith(prefix):
            return defs.get(ref[len(prefix):])
    return None


def _clean(node: Any, defs: dict[str, Any], depth: int) -> Any:
    if not isinstance(node, dict):
        return node
    if isinstance(node.get("$ref"), str):
        target = _resolve(node["$ref"], defs)
        if target is None or depth >= MAX_REF_DEPTH:
            return {"type": "object", "description": node.get("description", "")} if node.get("description") \
                else {"type": "object"}
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _clean(merged, defs, depth + 1)
    node = _merge_all_of(node)
    out: dict[str, Any] = {}
    _type_of(node, out)
    for key, value in node.items():
        if key in ("type", "const", "oneOf", "anyOf", "enum", "format"):
            continue
        if key == "properties" and isinstance(value, dict):
            if value:
                out["properties"] = {name: _clean(sub, defs, depth) for name, sub in value.items()}
        elif key == "items":
            out["items"] = _clean(value, defs, depth)
        elif key in KEPT:
            out[key] = value
    variants = node.get("anyOf") or node.get("oneOf")
    if isinstance(variants, list):
        _any_of([_clean(v, defs, depth) for v in variants], out)
    _enum(node, out)
    fmt = node.get("format")
    if isinstance(fmt, str) and fmt in FORMATS.get(str(out.get("type", "")).lower(), ()):
        out["format"] = fmt
    if "required" in out and "properties" in out:
        out["required"] = [r for r in out["required"] if r in out["properties"]]
    elif "required" in out:
        del out["required"]  # names no property Gemini was given: it refuses such a schema
    return out


def _type_of(node: dict[str, Any], out: dict[str, Any]) -> None:
    kind = node.get("type")
    if isinstance(kind, list):
        named = [k for k in kind if k != "null"]
        if len(named) < len(kind):
            out["nullable"] = True
        if len(named) == 1:
            out["type"] = named[0]
        elif named:  # several types: the one way Gemini can say so is anyOf
            out["anyOf"] = [{"type": k} for k in named]
    elif kind == "null":
        out["nullable"] = True
    elif isinstance(kind, str):
        out["type"] = kind


def _any_of(variants: list[Any], out: dict[str, Any]) -> None:
    if any(v == {"nullable": True} for v in variants):  # Optional[X] as pydantic writes it
        out["nullable"] = True
        variants = [v for v in variants if v != {"nullable": True}]
    if len(variants) == 1 and isinstance(variants[0], dict):
        for key, value in variants[0].items():
            out.setdefault(key, value)
    elif variants:
        out["anyOf"] = variants


def _merge_all_of(node: dict[str, Any]) -> dict[str, Any]:
    parts = node.get("allOf")
    if not isinstance(parts, list):
        return node
    merged = {k: v for k, v in node.items() if k != "allOf"}
    for part in parts:
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                merged["properties"] = {**(merged.get("properties") or {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*(merged.get("required") or []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _enum(node: dict[str, Any], out: dict[str, Any]) -> None:
    values = node.get("enum")
    if "const" in node:
        values = [node["const"]]
    if not isinstance(values, list):
        return
    if all(isinstance(v, str) for v in values):
        out["enum"] = values
        if out.get("type") in (None, "string"):
            out["type"] = "string"
        return
    # Gemini takes enums of strings only: the allowed values are told to the model in words instead
    listed = ", ".join(map(str, values))
    out["description"] = f"{out.get('description', '')} (one of: {listed})".strip()
