"""The modality signal: input parts carried, and requests for image, audio or video output in several
languages, against look-alikes that only talk about pictures, sound or video; end to end through a real server."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import base_config, explain_route
from turnout.config import ConfigError
from turnout.context import RoutingContext
from turnout.signals import signals
from turnout.signals.modality import requested_outputs


def make(**params):
    return signals.get("modality").from_config("m", params, "signals.m")


def run(signal, content):
    return asyncio.run(signal.evaluate(RoutingContext({"messages": [{"role": "user", "content": content}]})))


@pytest.mark.parametrize("text, modality", [
    ("Draw me a cat wearing a top hat.", "image"),
    ("Hey, could you generate a picture of a lighthouse?", "image"),
    ("I want a logo for my bakery.", "image"),
    ("Zeichne mir einen Hund.", "image"),
    ("Peux-tu dessiner un chat ?", "image"),
    ("Dessine-moi un mouton.", "image"),
    ("Genera un'immagine di un gatto.", "image"),
    ("画一只猫。", "image"),
    ("Please read this aloud: hello world.", "audio"),
    ("Lee este texto en voz alta.", "audio"),
    ("Convert this paragraph to speech.", "audio"),
    ("Generate an audio clip of birds singing.", "audio"),
    ("Make a short video of a dog surfing.", "video"),
    ("Crea un breve video di un tramonto.", "video"),
    ("Animate this logo.", "video"),
])
def test_requests_for_output_modalities(text, modality):
    assert sorted(requested_outputs(text)) == ([modality] if modality else [])


@pytest.mark.parametrize("text", [
    "Describe a picture of a cat wearing a top hat.",
    "How do I draw a circle with matplotlib?",
    "Let's draw a conclusion from this.",
    "I'm drawing a blank on names.",
    "Write a script for a short video about recycling.",
    "Give me a caption for my photo.",
    "Read this carefully and tell me what you think.",
    "paint, flash, bridesmaid, block, cut, car, draw, swim",  # a word list, not a request
    "draw((0,0)--(1,1));",  # a call in code
    "Male and female birds differ in colour.",
    "描述一下这张图片。",
])
def test_look_alikes_are_not_requests(text):
    assert requested_outputs(text) == {}


def test_params_choose_what_matches_and_inputs_come_from_parts():
    image_out = make(outputs=["image"])
    assert run(image_out, "Draw me a cat.").matched
    assert not run(image_out, "Read this aloud: hi.").matched
    assert run(image_out, "Read this aloud: hi.").detail["outputs"] == {"audio": "'read' … aloud"}
    parts = [{"type": "text", "text": "what is this?"},
             {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    images_in = make(inputs=["image"])
    result = run(images_in, parts)
    assert result.matched and result.score == 1.0 and result.detail["inputs"] == ["image"]
    assert not run(make(inputs=["audio", "file"]), parts).matched
    assert run(make(inputs=["file"]), [{"type": "file", "file": {"file_id": "f1"}}]).matched


def test_a_modality_signal_without_outputs_or_inputs_is_a_config_error():
    with pytest.raises(ConfigError, match="signals.m.*outputs"):
        make()
    with pytest.raises(ConfigError, match="outputs"):
        make(outputs=["smell"])


def test_a_real_server_routes_draw_me_to_the_image_model_and_explains_why(serve, upstream):
    config = base_config(upstream.url)
    config["signals"] = {"wants_image": {"kind": "modality", "outputs": ["image"]},
                         "wants_audio": {"kind": "modality", "outputs": ["audio"]}}
    config["decisions"] = [
        {"name": "images", "priority": 60, "when": {"signal": "wants_image"}, "models": ["strong"]},
        {"name": "speech", "priority": 50, "when": {"signal": "wants_audio"}, "models": ["claude"]},
        {"name": "default", "priority": 0, "models": ["small"]},
    ]
    server = serve(config)

    def route(text):
        return explain_route(server, text)

    drawn = route("Draw me a fox in the snow.")
    assert drawn["decision"] == "images", drawn
    explained = {s["name"]: s for s in drawn["signals"]}["wants_image"]
    assert explained["matched"] and explained["detail"]["outputs"] == {"image": "draw verb 'draw'"}
    assert route("Lis ce texte à voix haute : bonjour.")["decision"] == "speech"
    assert route("Describe a picture of a fox in the snow.")["decision"] == "default"


def test_a_request_after_characters_nfkc_expands_is_still_read():
    """3,000 U+FDFA become 54,000 characters once normalised; the edges are cut again, and the request at the end
    is still found."""
    from turnout.signals.modality import requested_outputs
    assert "image" in requested_outputs("\ufdfa" * 3000 + ". Draw me a cat.")
    assert requested_outputs("\ufdfa" * 3000) == {}
