"""The embedded demo (no config) answers on every door, each asked with its own official client: chat
completions, the Responses API and legacy completions (openai), the Messages API (anthropic), and embeddings from
the packaged static encoder."""

from __future__ import annotations

import anthropic
import numpy as np
import openai
import pytest

from tests.server.test_replay_demo import recorded
from turnout.models.encoders import get_encoder
from turnout.server import create_app
from turnout.testing import ServerThread


@pytest.fixture(scope="module")
def demo():
    with ServerThread(create_app(watch=False)) as server:
        yield server


@pytest.fixture(scope="module")
def row():
    return next(r for r in recorded() if "percent" in r["prompt"])  # the keyword rule sends it to GPT-4


def oai(demo) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{demo.url}/v1", api_key="none", max_retries=0)


def test_chat_completions(demo, row):
    answer = oai(demo).chat.completions.create(model="auto", messages=[{"role": "user", "content": row["prompt"]}])
    assert answer.choices[0].message.content == row["answers"]["gpt-4-1106-preview"]


def test_responses(demo, row):
    raw = oai(demo).responses.with_raw_response.create(model="auto", input=row["prompt"])
    assert raw.headers["x-turnout-model"] == "gpt-4-1106-preview"
    assert raw.parse().output_text == row["answers"]["gpt-4-1106-preview"]
    streamed = "".join(e.delta for e in oai(demo).responses.create(model="auto", input=row["prompt"], stream=True)
                       if e.type == "response.output_text.delta")
    assert streamed == row["answers"]["gpt-4-1106-preview"]


def test_messages(demo, row):
    client = anthropic.Anthropic(base_url=demo.url, api_key="none", max_retries=0)
    message = client.messages.create(model="auto", max_tokens=1024,
                                     messages=[{"role": "user", "content": row["prompt"]}])
    assert message.content[0].text == row["answers"]["gpt-4-1106-preview"]
    with client.messages.stream(model="auto", max_tokens=1024,
                                messages=[{"role": "user", "content": row["prompt"]}]) as stream:
        assert stream.get_final_text() == row["answers"]["gpt-4-1106-preview"]


def test_legacy_completions(demo, row):
    raw = oai(demo).completions.with_raw_response.create(model="auto", prompt=row["prompt"])
    assert raw.headers["x-turnout-model"] == "gpt-4-1106-preview"
    assert raw.parse().choices[0].text == row["answers"]["gpt-4-1106-preview"]
    chunks = list(oai(demo).completions.create(model="mixtral-8x7b-instruct-v0.1", prompt=row["prompt"],
                                               stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == row["answers"]["mixtral-8x7b-instruct-v0.1"]


def test_embeddings_are_the_packaged_encoders_vectors(demo):
    texts = ["How many apples does Tom have?", "Tom's apples: how many are there?", "The stock market fell today."]
    raw = oai(demo).embeddings.with_raw_response.create(model="auto", input=texts)  # base64, decoded by the SDK
    assert raw.headers["x-turnout-model"] == "minilm-static" and raw.headers["x-turnout-cost-usd"] == "0.00000000"
    got = np.array([d.embedding for d in raw.parse().data])
    assert got.shape == (3, 256)
    assert np.allclose(got, get_encoder("minilm-static").encode(texts), atol=1e-6)
    similar, unrelated = got[0] @ got[1], got[0] @ got[2]
    assert similar > unrelated + 0.2  # real sentence vectors: a paraphrase is nearer than another topic
    floats = oai(demo).embeddings.create(model="minilm-static", input="one text", encoding_format="float")
    assert len(floats.data[0].embedding) == 256 and floats.usage.prompt_tokens > 0


def test_the_demo_lists_its_embeddings_model_and_refuses_it_chat(demo):
    assert oai(demo).models.retrieve("minilm-static").turnout["embeddings"] is True
    with pytest.raises(openai.BadRequestError) as exc:
        oai(demo).chat.completions.create(model="minilm-static", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as exc:
        oai(demo).embeddings.create(model="minilm-static", input="x", dimensions=64)
    assert exc.value.body["param"] == "dimensions"
