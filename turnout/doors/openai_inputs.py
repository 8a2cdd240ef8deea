"""Request checks shared by OpenAI's embeddings and legacy completions doors: an input that is text or token ids
(a string, a list of strings, a list of token ids, a list of token id lists), and a body model whose errors name
the field. Unknown fields are left alone: they pass through to the upstream."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError

from turnout.config.issues import format_path
from turnout.errors import InvalidRequestError

MAX_INPUTS = 2048  # OpenAI's own limit on the items of one request
MAX_TOKEN_IDS = 300_000  # OpenAI's own limit on the tokens of one embeddings request, all inputs together
TextOrTokens = str | list[str] | list[int] | list[list[int]]


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _all_tokens(values: list[Any]) -> bool:
    """Every item a token id, tested in C (type() and min() over the list): a Python call per id made 4 million of
    them, as 8 MiB holds, 0.4 s on the event loop."""
    return not values or set(map(type, values)) == {int} and min(values) >= 0


def check_text_or_tokens(body: dict[str, Any], field: str) -> list[str] | None:
    """Raise InvalidRequestError naming the bad item (`input[3]`); return the texts, or None for token ids."""
    value = body.get(field)
    if field not in body:
        raise InvalidRequestError(f"{field}: required but missing", param=field)
    if isinstance(value, str):
        if not value:
            raise InvalidRequestError(f"{field}: must not be an empty string", param=field)
        return [value]
    if not isinstance(value, list) or not value:
        raise InvalidRequestError(f"{field}: must be a string, a list of strings, a list of token ids or a list of "
                                  f"token id lists, and not empty", param=field)
    if len(value) > MAX_INPUTS:
        raise InvalidRequestError(f"{field}: {len(value)} items, more than {MAX_INPUTS}", param=field)
    if isinstance(value[0], str):
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise InvalidRequestError(f"{field}[{i}]: must be a non-empty string like the first item",
                                          param=f"{field}[{i}]")
        return list(value)
    if _is_token(value[0]):
        for i, item in enumerate(value if not _all_tokens(value) else ()):
            if not _is_token(item):
                raise InvalidRequestError(f"{field}[{i}]: must be a token id (an integer >= 0) like the first item",
                                          param=f"{field}[{i}]")
        return None
    total = sum(len(item) for item in value if isinstance(item, list))
    if total > MAX_TOKEN_IDS:
        raise InvalidRequestError(f"{field}: {total} token ids in all, more than {MAX_TOKEN_IDS}", param=field)
    for i, item in enumerate(value):
        if not isinstance(item, list) or not item:
            raise InvalidRequestError(f"{field}[{i}]: must be a non-empty list of token ids", param=f"{field}[{i}]")
        for j, token in enumerate(item if not _all_tokens(item) else ()):
            if not _is_token(token):
                raise InvalidRequestError(f"{field}[{i}][{j}]: must be a token id (an integer >= 0)",
                                          param=f"{field}[{i}][{j}]")
    return None


def check_body(adapter: TypeAdapter[Any], body: Any, checked: str | None = None) -> None:
    """Validate against a request model; raise InvalidRequestError naming the most specific bad field. `checked`:
    a field check_text_or_tokens has passed, not validated again (a union of four list types over 300,000 token
    ids cost ~70 ms more)."""
    if not isinstance(body, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    try:
        adapter.validate_python({**body, checked: "checked"} if checked is not None else body)
    except ValidationError as exc:
        err = max(exc.errors(include_url=False), key=lambda e: len(e["loc"]))
        # pydantic labels a union's branches ("str", "list[str]"): the field path is what the caller wrote
        loc = [p for p in err["loc"] if not (isinstance(p, str) and (p in ("str", "int", "float", "bool")
                                                                      or p.startswith(("list[", "literal["))))]
        param = format_path(loc)
        message = "required but missing" if err["type"] == "missing" else err["msg"]
        raise InvalidRequestError(f"{param}: {message}" if param else message, param=param or None) from None
