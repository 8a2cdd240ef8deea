"""A body's nesting and its count of arrays and objects are bounded before anything walks it: a body with many
brackets is measured on its bytes (strings' brackets do not count) and refused before it is parsed, in each
protocol's own error shape; brackets inside strings, however many, are served."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.conftest import base_config
from turnout.errors import InvalidRequestError
from turnout.server.body import WALK_BRACKETS, parse_json, structure


@pytest.mark.parametrize("value", [
    {}, [], {"a": "[[[{{{"}, {"a": "\\\"]]]"}, [[[]], {"b": [{}]}], {"a": ["]", "[", {"c": "}"}]},
    {"deep": [[[[["x"]]]]], "s": "\"[\"" * 50}, [1, 2, "é[ü]", None, True],
])
def test_structure_reads_depth_and_containers_from_the_bytes(value):
    def walk(x, d=1):
        if isinstance(x, dict):
            x = list(x.values())
        if not isinstance(x, list):
            return 0, 0
        inner = [walk(c, d + 1) for c in x]
        return max([d] + [i[0] for i in inner]), 1 + sum(i[1] for i in inner)

    raw = orjson.dumps(value)
    assert structure(raw) == walk(value)
    assert structure(b" \n" + raw.replace(b",", b" , ") + b"\n") == walk(value)


def test_many_containers_are_refused_before_parsing_and_strings_do_not_count():
    with pytest.raises(InvalidRequestError) as caught:
        parse_json(b'{"a":[' + b"[]," * 300_000 + b"[]]}", 128)
    assert caught.value.code == "json_too_large" and "300003 arrays and objects" in caught.value.message
    with pytest.raises(InvalidRequestError) as caught:  # too deep, measured on the bytes
        parse_json(b'{"m":' + b"[" * 300 + b"{}," * WALK_BRACKETS + b"]" * 300 + b"}", 128)
    assert caught.value.code == "json_too_deep"
    # many brackets, all inside strings: parsed and served as before
    text = "[x]{y} \"q\" \\" * 50_000
    assert parse_json(orjson.dumps({"content": text}), 128) == {"content": text}
    # a limit of one's own
    raw = b"[" + b"{}," * (WALK_BRACKETS + 10) + b"{}]"
    assert len(parse_json(raw, 128)) == WALK_BRACKETS + 11
    with pytest.raises(InvalidRequestError):
        parse_json(raw, 128, max_containers=WALK_BRACKETS)
    # a limit below the bytes-measuring threshold holds too
    small = b"[" + b"{}," * 1500 + b"{}]"
    assert len(parse_json(small, 128)) == 1501
    with pytest.raises(InvalidRequestError) as caught:
        parse_json(small, 128, max_containers=1000)
    assert caught.value.code == "json_too_large"


@pytest.fixture(scope="module")
def server(upstream):
    from turnout.config import parse_config
    from turnout.server import create_app
    from turnout.testing import ServerThread

    started = ServerThread(create_app(config=parse_config(base_config(upstream.url)), watch=False)).start()
    yield started
    started.stop()


HOSTILE = b'{"model":"small","messages":[{"role":"user","content":"hi"}],"metadata":{"x":[' + b"[]," * 2_700_000 + \
    b"[]]}}"  # 8 MiB of empty arrays: parsing took 0.6 s and walking 2.5 s, with the event loop held


def test_8_mib_of_empty_arrays_is_a_400_in_the_doors_shape(server):
    assert len(HOSTILE) < 8 * 1024 * 1024
    r = httpx.post(server.url + "/v1/chat/completions", content=HOSTILE,
                   headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "json_too_large" and "250000" in r.json()["error"]["message"]
    r = httpx.post(server.url + "/v1/messages", content=HOSTILE.replace(b'"small"', b'"small","max_tokens":8'),
                   headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 400, r.text
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error"
    # brackets in a prompt are text: served
    prompt = "def f(a): return [x for x in {a: [a]}][0]\n" * 3000
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": "small", "messages": [
        {"role": "user", "content": prompt}]}, timeout=60)
    assert r.status_code == 200, r.text
