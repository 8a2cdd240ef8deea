"""What may be an HTTP header, checked where config names one (header_mutation, `models.X.headers`): a bad name
or a value with a line break passes YAML, then fails every request it touches (or splits a response)."""

from __future__ import annotations

import re

# RFC 7230 §3.2.6: a field name is a token
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# visible ASCII, space and tab: httpx encodes upstream header values as ASCII, and CR/LF would end the header
_VALUE = re.compile(r"[\t\x20-\x7e]*")


def name_problem(name: str) -> str | None:
    if _TOKEN.fullmatch(name):
        return None
    return f"'{name}' is not a valid header name (RFC 7230 token characters only: letters, digits, !#$%&'*+-.^_`|~)"


def value_problem(value: str) -> str | None:
    if _VALUE.fullmatch(value):
        return None
    if "\r" in value or "\n" in value:
        return "the value contains a line break (CR/LF), which would end the header and start another"
    return "the value may hold only visible ASCII characters, spaces and tabs"
