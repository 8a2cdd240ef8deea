"""GET /v1/models and /v1/models/{id}, asked with the official openai client."""

from __future__ import annotations

import hashlib

import httpx
import openai
import pytest

from tests.doors.test_embeddings import embeddings_config

KEY = "tk-models-endpoint-key-0123456789"
ADMIN = "tk-models-endpoint-admin-0123456789"


def client(server, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


@pytest.fixture
def server(serve, upstream):
    return serve(embeddings_config(upstream.url))


def test_retrieve_an_alias_and_models_as_listed(server):
    c = client(server)
    listed = {m.id: m.model_dump() for m in c.models.list()}
    auto = c.models.retrieve("auto")
    assert (auto.id, auto.object, auto.owned_by) == ("auto", "model", "turnout")
    assert auto.model_dump() == listed["auto"] and auto.turnout == {"kind": "alias"}
    small = c.models.retrieve("small")
    assert small.owned_by == "openai" and small.turnout == {"kind": "model", "upstream_model": "mock-small"}
    assert small.model_dump() == listed["small"]
    assert c.models.retrieve("embed-small").turnout == {"kind": "embeddings", "upstream_model": "mock-embed-small",
                                                       "embeddings": True}
    raw_list = httpx.get(f"{server.url}/v1/models").json()["data"]
    assert httpx.get(f"{server.url}/models/claude").json() == next(m for m in raw_list if m["id"] == "claude")


def test_an_unknown_id_is_model_not_found(server):
    with pytest.raises(openai.NotFoundError) as exc:
        client(server).models.retrieve("gpt-nonexistent")
    assert exc.value.body["code"] == "model_not_found" and "'gpt-nonexistent'" in exc.value.body["message"]
    response = httpx.get(f"{server.url}/v1/models/org/name-with-slash")
    assert response.status_code == 404 and "'org/name-with-slash'" in response.json()["error"]["message"]


def test_without_allow_direct_only_aliases_exist(serve, upstream):
    config = embeddings_config(upstream.url)
    config["routing"] = {"aliases": ["auto", "fast"], "allow_direct": False}
    server = serve(config)
    assert [m.id for m in client(server).models.list()] == ["auto", "fast"]
    assert client(server).models.retrieve("fast").id == "fast"
    with pytest.raises(openai.NotFoundError):
        client(server).models.retrieve("small")


def test_protected_like_the_list(serve, upstream):
    config = embeddings_config(upstream.url)
    config["auth"] = {"keys": [{"name": "k", "key": KEY}], "protect": ["models"],
                      "admin_key_sha256": hashlib.sha256(ADMIN.encode()).hexdigest()}
    server = serve(config)
    with pytest.raises(openai.AuthenticationError):
        client(server, "tk-wrong-key-000000000000").models.retrieve("auto")
    assert httpx.get(f"{server.url}/v1/models/auto").status_code == 401
    assert client(server, KEY).models.retrieve("auto").id == "auto"
    assert client(server, ADMIN).models.retrieve("small").id == "small"
