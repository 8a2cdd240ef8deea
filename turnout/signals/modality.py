"""Modality signal: what a request carries (image, audio, video or file parts) and what it asks to get back (an
image, audio or video), so a decision can send "draw me a cat" to an image model.

Input modalities are read from the message parts. Output requests are read from the last user message by
clause-level rules in English, German, French, Spanish, Italian and Portuguese (plus a few Chinese and Japanese
phrasings): a clause that *starts* (after politeness such as "please", "can you", "kannst du", "peux-tu") with
a drawing verb ("draw", "zeichne", "dessine", "dibuja"), with a making verb followed within four words by an
image, audio or video noun ("generate a picture", "make a short video", "crea un'immagine"), with "read … aloud",
"convert … to speech", "sing", "animate". Talking *about* a picture ("describe a picture of …", "how do I draw
a circle in matplotlib", "write a script for a short video", "I'm drawing a blank") starts no such clause, so
it is not a request. Time is linear in the text (one tokenisation, a fixed look-ahead)."""

from __future__ import annotations

import itertools
import re
import unicodedata
from typing import Literal

from pydantic import Field, model_validator

from turnout.context import RoutingContext, SignalResult
from turnout.params import Params
from turnout.signals.base import Signal, register

OutputModality = Literal["image", "audio", "video"]
InputModality = Literal["image", "audio", "video", "file"]

PART_TYPES: dict[str, str] = {"image_url": "image", "image": "image", "input_image": "image",
                              "input_audio": "audio", "audio": "audio", "video_url": "video", "input_video": "video",
                              "video": "video", "file": "file", "input_file": "file", "document": "file"}
EDGE_CHARS = 2000  # output requests are read from the message's first and last 2,000 characters
CLAUSE_TOKENS = 40  # a rule reads a clause's first 40 words
CLAUSE = re.compile(r"[.!?;:\n。！？]+")
TOKEN = re.compile(r"\w+")

# token sequences that may come before the verb of a request
POLITE = [p.split() for p in (
    "please", "pls", "kindly", "now", "ok", "okay", "hey", "hi", "also", "and", "then", "just", "go ahead and",
    "can you", "could you", "would you", "will you", "can u", "you can", "i want you to", "i d like you to",
    "i would like you to", "i need you to", "help me", "let s", "lets", "for me", "quickly",
    "bitte", "kannst du", "könntest du", "kannst du mir", "könntest du mir", "würdest du", "mal",
    "s il te plaît", "s il vous plaît", "peux tu", "pourrais tu", "pouvez vous", "tu peux", "merci de",
    "por favor", "puedes", "podrías", "puede", "podría", "me puedes", "me podrías",
    "per favore", "puoi", "potresti", "mi puoi", "mi potresti", "você pode", "pode", "poderia", "você poderia")]
WANT = [p.split() for p in ("i need", "i want", "i d like", "i would like", "ich möchte", "ich brauche", "je veux",
                            "je voudrais", "quiero", "necesito", "voglio", "vorrei", "quero", "preciso")]
DRAW_VERBS = {  # a drawing verb starting a clause asks for an image by itself ("draw me a cat")
    "draw", "paint", "sketch", "illustrate", "doodle", "zeichne", "zeichnen", "male", "dessine", "dessinez",
    "dessiner", "peins", "dibuja", "dibújame", "dibujame", "dibujar", "pinta", "píntame", "disegna", "disegnami",
    "disegnare", "dipingi", "desenhe", "desenha", "desenhar", "pinte"}
NOT_DRAWN = {"conclusion", "conclusions", "blank", "attention", "line", "lines", "parallel", "parallels",
             "distinction", "comparison", "inspiration", "up", "on", "from", "out", "lots", "straws"}
MAKE_VERBS = {
    "generate", "create", "make", "produce", "design", "render", "give", "show", "send", "compose", "record",
    "need", "want", "erstelle", "erstellen", "generiere", "generieren", "mach", "mache", "erzeuge", "gestalte",
    "zeig", "zeige", "génère", "générer", "crée", "créer", "fais", "faire", "montre", "produis", "genera", "generar",
    "crea", "crear", "haz", "hazme", "hacer", "muéstrame", "genere", "creare", "fai", "fammi", "mostrami",
    "gere", "gerar", "crie", "criar", "faça", "fazer", "mostre"}
CONVERT_VERBS = {"convert", "turn", "transform", "wandle", "umwandeln", "verwandle", "convertis", "transforme",
                 "convierte", "transforma", "converti", "trasforma", "converta"}
NOUNS: dict[str, set[str]] = {
    "image": {"image", "images", "picture", "pictures", "photo", "photos", "photograph", "illustration", "drawing",
              "painting", "logo", "icon", "portrait", "wallpaper", "poster", "artwork", "sketch", "watercolour",
              "watercolor", "cartoon", "meme", "avatar", "diagram", "bild", "bilder", "foto", "fotos", "zeichnung",
              "grafik", "gemälde", "illustrationen", "dessin", "imagen", "imágenes", "ilustración", "dibujo",
              "immagine", "immagini", "illustrazione", "disegno", "imagem", "imagens", "ilustração", "desenho"},
    "audio": {"audio", "song", "melody", "tune", "jingle", "podcast", "recording", "soundtrack", "voiceover",
              "narration", "mp3", "lullaby", "sound", "speech", "voice", "lied", "sprachaufnahme", "hörbuch",
              "chanson", "mélodie", "enregistrement", "canción", "melodía", "grabación", "canzone", "melodia",
              "registrazione", "música", "musica", "musik", "musique"},
    "video": {"video", "videos", "clip", "clips", "animation", "animations", "gif", "movie", "film", "trailer", "reel",
              "vidéo", "vídeo", "filmato", "animación", "animazione", "animação", "vidéos", "vídeos"},
}
# words that make the noun something else's: "a caption for my photo", "a plan for my video game studio"
BREAKS = {"for", "of", "about", "my", "your", "this", "that", "these", "those", "our", "his", "her", "their",
          "caption", "captions", "alt", "text", "code", "script", "summary", "description", "list", "plan", "query",
          "function", "program", "title", "name", "names", "story", "poem", "essay", "review", "analysis", "game",
          "für", "über", "pour", "sur", "para", "sobre", "per", "su"}
ALOUD = [p.split() for p in ("aloud", "out loud", "laut", "vor", "vorlesen", "à voix haute", "en voz alta",
                             "ad alta voce", "em voz alta", "in a voice", "voice")]
READ_VERBS = {"read", "say", "speak", "narrate", "recite", "lies", "lese", "vorlesen", "sag", "lis", "lisez", "dis",
              "lee", "léeme", "di", "leggi", "leggimi", "leia", "diga", "narra"}
SING_VERBS = {"sing", "singe", "chante", "canta", "cante", "hum"}
SPEECH = {"speech", "audio", "voice", "sprache", "parole", "voix", "voz", "voce", "mp3"}
CJK = {
    "image": re.compile(r"^(请|帮我|给我)?画[一个张幅]|(画|绘制|生成|创作|做)[^。？！]{0,8}(图|画|照片)|(絵|イラスト|画像)を(描|生成|作)|描いて"),
    "audio": re.compile(r"(朗读|读出来|念出来|生成[^。？！]{0,6}(音频|语音|歌))|読み上げ"),
    "video": re.compile(r"(生成|制作|做)[^。？！]{0,8}(视频|动画)|動画を(生成|作)"),
}
DESCRIBE = re.compile(r"描述|説明")


TRIGGERS = DRAW_VERBS | MAKE_VERBS | CONVERT_VERBS | READ_VERBS | SING_VERBS | {
    "animate", "animiere", "anime", "anima", "animar", "tts", "male", "need", "want", "like", "möchte", "brauche",
    "veux", "voudrais", "quiero", "necesito", "voglio", "vorrei", "quero", "preciso"}


def _skip_polite(tokens: list[str]) -> int:
    i, moved = 0, True
    while moved and i < len(tokens):
        moved = False
        for phrase in POLITE:
            if tokens[i:i + len(phrase)] == phrase:
                i, moved = i + len(phrase), True
                break
    return i


def _has(tokens: list[str], phrases: list[list[str]]) -> bool:
    """Whether any phrase occurs as consecutive tokens (one substring search per phrase, in C)."""
    joined = f" {' '.join(tokens)} "
    return any(f" {' '.join(p)} " in joined for p in phrases)


def _noun_near(tokens: list[str], start: int, window: int = 4) -> str | None:
    """The modality of the first image, audio or video noun within `window` words ("an audio clip": audio)."""
    for token in tokens[start:start + window + 1]:
        for modality, nouns in NOUNS.items():
            if token in nouns:
                return modality
        if token in BREAKS:
            return None
    return None


def clause_requests(clause: str) -> dict[str, str]:
    """Output modality → the rule that found a request for it in this clause."""
    lowered = clause.lower().replace("'", " ").replace("’", " ")
    spans = list(itertools.islice(TOKEN.finditer(lowered), CLAUSE_TOKENS))
    tokens = [m.group() for m in spans]
    found: dict[str, str] = {}
    if not TRIGGERS.intersection(tokens[:10]) and " text to speech " not in f" {' '.join(tokens)} ":
        return found  # no rule's verb near the clause's start (politeness is at most a few words)
    i = _skip_polite(tokens)
    # a word list ("paint, flash, draw, …") or a call in code ("draw((0,0)--(1,1));") is not a request
    if i >= len(tokens) or lowered[spans[i].end():spans[i].end() + 1] in {",", "(", "=", "."} or \
            lowered.count(",") >= 4 and len(tokens) <= 2 * lowered.count(",") + 2:
        return found
    verb, rest = tokens[i], i + 1
    if verb == "male" and tokens[rest:rest + 1] not in (["mir"], ["uns"], ["ein"], ["eine"], ["einen"]):
        verb = ""  # German "male mir …" (paint me), not English "male"
    for phrase in WANT:
        if tokens[i:i + len(phrase)] == phrase:
            verb, rest = "want", i + len(phrase)
    if rest < len(tokens) and tokens[rest] in {"me", "mir", "moi", "nous", "mi", "uns"}:
        rest += 1
    if verb in DRAW_VERBS and not NOT_DRAWN.intersection(tokens[rest:rest + 2]):
        found["image"] = f"draw verb '{verb}'"
    if verb in MAKE_VERBS:
        modality = _noun_near(tokens, rest)
        if modality is not None:
            found.setdefault(modality, f"'{verb}' + {modality} noun")
    if verb in CONVERT_VERBS and any(t in SPEECH for t in tokens[rest:rest + 8]):
        found.setdefault("audio", f"'{verb}' … to speech")
    if verb in CONVERT_VERBS and any(t in NOUNS["video"] for t in tokens[rest:rest + 8]):
        found.setdefault("video", f"'{verb}' … into a video")
    if verb in READ_VERBS and _has(tokens[rest:], ALOUD):
        found.setdefault("audio", f"'{verb}' … aloud")
    if verb in SING_VERBS:
        found.setdefault("audio", f"'{verb}'")
    if verb in {"animate", "animiere", "anime", "anima", "animar"}:
        found.setdefault("video", f"'{verb}'")
    if " text to speech " in f" {' '.join(tokens)} " or "tts" in tokens:
        found.setdefault("audio", "text to speech")
    return found


def requested_outputs(text: str) -> dict[str, str]:
    """Output modality → why: the first rule that found a request for it in the text."""
    if len(text) > 2 * EDGE_CHARS:
        text = text[:EDGE_CHARS] + "\n" + text[-EDGE_CHARS:]
    text = unicodedata.normalize("NFKC", text)
    if len(text) > 2 * EDGE_CHARS + 1:  # NFKC expands some characters up to 18-fold ("\ufdfa"): cut again
        text = text[:EDGE_CHARS] + "\n" + text[-EDGE_CHARS:]
    found: dict[str, str] = {}
    lowered = text.lower()
    words = set(TOKEN.findall(lowered.replace("'", " ").replace("’", " ")))
    if words & TRIGGERS or "text to speech" in lowered:  # most prompts hold no verb a rule starts with
        clauses = CLAUSE.split(text)
    else:
        clauses = []
    for clause in clauses:
        for modality, why in clause_requests(clause).items():
            found.setdefault(modality, why)
    if not DESCRIBE.search(text):
        for modality, pattern in CJK.items():
            if pattern.search(text):
                found.setdefault(modality, "CJK request")
    return found


def input_modalities(ctx: RoutingContext) -> set[str]:
    kinds: set[str] = set()
    for message in ctx.messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            kinds.update(PART_TYPES[p["type"]] for p in content
                         if isinstance(p, dict) and p.get("type") in PART_TYPES)
    return kinds


class ModalityParams(Params):
    outputs: list[OutputModality] = Field(
        default_factory=list, description="matched when the request asks for one of these as output")
    inputs: list[InputModality] = Field(default_factory=list, description="matched when the request carries one")
    scope: Literal["last_user", "user", "all"] = "last_user"

    @model_validator(mode="after")
    def _something(self) -> ModalityParams:
        if not self.outputs and not self.inputs:
            raise ValueError("set `outputs` (image, audio, video) or `inputs` (image, audio, video, file)")
        return self


@register("modality")
class ModalitySignal(Signal):
    """Score 1 when the request carries one of `inputs` or asks for one of `outputs`; the detail lists every
    modality found either way and the rule that found each requested output."""

    Params = ModalityParams

    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        params: ModalityParams = self.params  # type: ignore[assignment]
        carried = input_modalities(ctx)
        wanted = requested_outputs(ctx.text(params.scope)) if params.outputs else {}
        hits = sorted({m for m in params.outputs if m in wanted} | {m for m in params.inputs if m in carried})
        return SignalResult(bool(hits), 1.0 if hits else 0.0,
                            {"outputs": wanted, "inputs": sorted(carried), "matched": hits})
