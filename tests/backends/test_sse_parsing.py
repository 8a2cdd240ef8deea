"""The per-chunk shortcuts of a relayed stream read what the general forms read."""

from __future__ import annotations

import re

import pytest

from turnout.backends.http import _parse_event
from turnout.backends.openai_compat import finishes

PATTERN = re.compile(r'"finish_reason"\s*:\s*"')  # what the relay looked for before `finishes`

CHUNKS = [
    '{"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}',
    '{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
    '{"choices": [{"index": 0, "delta": {}, "finish_reason" :  "length"}]}',
    '{"choices":[{"index":0,"finish_reason":null},{"index":1,"finish_reason":"stop"}]}',  # the second finishes
    '{"choices":[{"delta":{"content":"\\"finish_reason\\": \\"x"}}]}',  # quoted in content: both say yes
    '{"finish_reason":}',
    '"finish_reason"',
    '',
]


@pytest.mark.parametrize("chunk", CHUNKS)
def test_finishes_is_the_finish_reason_pattern(chunk):
    assert finishes(chunk) is (PATTERN.search(chunk) is not None)


@pytest.mark.parametrize("raw, parsed", [
    (b'data: {"a":1}', (None, '{"a":1}')),
    (b'data:{"a":1}', (None, '{"a":1}')),
    (b"data: [DONE]", (None, "[DONE]")),
    (b"data: caf\xc3\xa9", (None, "caf\u00e9")),
    (b"data: \xff", (None, "\ufffd")),
    (b"event: message_start\ndata: {}", ("message_start", "{}")),
    (b"data: one\ndata: two", (None, "one\ntwo")),
    (b": a comment", None),
    (b"event: ping", None),
])
def test_events_parse_alike_on_the_short_path_and_the_long(raw, parsed):
    assert _parse_event(raw) == parsed
