"""Fact-check signal: does answering this prompt rest on facts that should be checked (people, numbers, dates,
places, events, statistics, citations, claims to verify), as opposed to writing, code, opinion, maths to compute
or reworking a given text?

A weighted sum of cues passed through a logistic function: a question that opens with a factual question word
("who", "when", "how many", "wer", "quand", "cuántos", "quanti"), factual nouns and verbs ("born", "capital",
"population", "won"), a year, a proper noun in mid-sentence, requests for sources ("cite", "DOI",
"peer-reviewed"), requests to verify ("is it true that") push the score up; an opening that asks for creative
writing, code, an opinion, a computation, a rewrite or a translation pushes it down, so "write a story about
who won the race" is not a fact question. The weights are in CUES below, set by hand on the dev split of
turnout/eval/data/fact_check (docs/signals.md gives the held-out figures). Linear in the text."""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Literal

from pydantic import Field

from turnout.context import RoutingContext, SignalResult
from turnout.params import Params
from turnout.signals.base import Signal, register

MAX_CHARS = 4000
TOKEN = re.compile(r"\w+")
YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})s?\b")
NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
ARITHMETIC = re.compile(r"\d\s*(?:[-+*/×÷^=]|times|plus|minus|divided by|mal|fois|por|per|più|meno)\s*\d")
PROPER = re.compile(r"(?:^|[^.!?\n])\s([A-ZÀ-Ý][a-zà-ÿ]+(?:\s[A-ZÀ-Ý][a-zà-ÿ]+)*)")

QUESTION_WORDS = {
    "who", "whom", "whose", "when", "where", "which", "wer", "wen", "wem", "wessen", "wann", "wo", "woher", "welche",
    "welcher", "welches", "qui", "quand", "où", "quel", "quelle", "quels", "quelles", "quién", "quiénes", "quien",
    "cuándo", "cuando", "dónde", "donde", "cuál", "cuáles", "chi", "quando", "dove", "quale", "quali", "qual",
    "quem", "onde"}
HOW_MUCH = [p.split() for p in (
    "how many", "how much", "how old", "how tall", "how far", "how long", "how big", "how high", "how deep",
    "how large", "how heavy", "what year", "what date", "what percentage", "what share", "what is the population",
    "what was the", "what is the capital", "what is the current", "what are the latest", "what happened",
    "what caused", "wie viele", "wie viel", "wie alt", "wie hoch", "wie groß", "combien", "en quelle année",
    "cuántos", "cuántas", "cuánto", "en qué año", "quanti", "quante", "quanto", "in che anno", "tell me about",
    "what does the")]
FACT_WORDS = {
    "born", "died", "death", "deaths", "founded", "invented", "discovered", "won", "win", "elected", "president",
    "ceo", "capital", "population", "gdp", "unemployment", "statistics", "percentage", "percent", "rate", "record",
    "released", "signed", "happened", "hosted", "headquarters", "wrote", "written", "painted", "directed",
    "author", "history", "anniversary", "minimum", "wage", "height", "tallest", "largest", "highest", "first",
    "latest", "current", "battle", "treaty", "war", "election", "championship", "olympics", "cup", "nobel",
    "prize", "capacity", "distance", "boiling", "headquartered", "inhabitants", "einwohner", "gegründet",
    "gewonnen", "geboren", "hauptstadt", "habitants", "écrit", "fondé", "née", "né", "habitantes", "pintó",
    "ganó", "fundada", "abitanti", "scoperto", "fondata", "vinto", "nato", "nata", "capitale",
    "life", "background", "films", "film", "movie", "album", "season", "episode"}
SOURCE_WORDS = {"cite", "citation", "citations", "source", "sources", "reference", "references", "doi",
                "peer", "study", "studies", "according", "paper", "guideline", "guidelines", "quelle", "quellen",
                "fuente", "fuentes", "fonte", "fonti", "statistique", "statistik", "estadística"}
VERIFY = [p.split() for p in (
    "is it true", "true that", "is that accurate", "is that true", "is it correct", "correct that", "verify",
    "fact check", "really", "myth", "stimmt es", "est ce vrai", "es verdad", "è vero")]
CREATIVE = {"write", "compose", "imagine", "pretend", "invent", "brainstorm", "come", "roleplay", "draft",
            "schreib", "schreibe", "écris", "écrivez", "escribe", "escriba", "imagina", "scrivi",
            "immagina", "escreva", "inventa"}
CREATIVE_WORDS = {"story", "poem", "song", "haiku", "limerick", "fictional", "fiction", "diary", "fairy",
                  "bedtime", "names", "slogan", "lyrics", "chorus", "gedicht", "geschichte", "histoire", "poème",
                  "poema", "cuento", "historia", "poesia", "favola", "storia"}
CODE_WORDS = {"python", "javascript", "typescript", "java", "rust", "sql", "bash", "function", "code", "bug",
              "compile", "regex", "implement", "refactor", "console", "def", "class", "script", "html", "css",
              "api", "json", "query", "funktion", "fonction", "función", "funzione", "log", "undefined", "print"}
OPINION = [p.split() for p in (
    "what do you think", "your opinion", "in your view", "should i", "do you prefer", "which do you prefer",
    "your honest", "would you recommend", "was hältst du", "qu en penses tu", "qué opinas", "cosa ne pensi",
    "what would you", "do you like")]
MATH_WORDS = {"solve", "compute", "calculate", "simplify", "derivative", "integral", "equation", "factor",
              "prove", "löse", "berechne", "résous", "calcule", "resuelve", "calcula", "risolvi", "calcola",
              "geteilt", "ways", "probability", "sum", "divisible", "digit", "digits", "factors", "area", "total",
              "remainder", "product", "integer", "integers", "clue", "clues", "houses"}
REWRITE = {"rewrite", "translate", "summarise", "summarize", "paraphrase", "proofread", "shorten", "fix",
           "edit", "polish", "übersetze", "traduis", "traduce", "traduci", "traduza", "make", "correct", "reword"}
ADVICE = [p.split() for p in ("help me", "give me some tips", "tips for", "plan a", "how do i", "how can i",
                              "how to", "wie kann ich", "comment puis je", "cómo puedo", "come posso")]
CHAT = {"hi", "hello", "hey", "thanks", "thank", "hallo", "danke", "bonjour", "merci", "hola", "gracias", "ciao",
        "grazie"}
OPEN_QUESTION_WORDS = {"what", "was", "name", "qué", "que", "quoi", "cosa", "che", "o", "were", "is", "are", "did",
                       "does", "do", "ist", "war", "est"}
BIAS = -1.0


def _has(joined: str, phrases: list[list[str]]) -> bool:
    """Whether any phrase occurs as consecutive tokens of `joined` (the tokens, space-separated and padded)."""
    return any(f" {' '.join(p)} " in joined for p in phrases)


def fact_cues(text: str) -> dict[str, float]:
    """Each cue found and its weight; the score is the logistic function of BIAS plus their sum."""
    # cut again after NFKC: one character can expand to 18 ("\ufdfa"), which made 4,000 of them 72,000 (13 ms)
    text = unicodedata.normalize("NFKC", text[:MAX_CHARS])[:MAX_CHARS]
    tokens = TOKEN.findall(text.lower().replace("'", " ").replace("’", " "))
    words, joined, opening = set(tokens), f" {' '.join(tokens)} ", f" {' '.join(tokens[:4])} "
    cues: dict[str, float] = {}
    if text.rstrip().endswith(("?", "？")):
        cues["question mark"] = 0.5
    if tokens and (tokens[0] in QUESTION_WORDS or _has(opening, HOW_MUCH)):
        cues["factual question word"] = 1.5
    elif tokens and tokens[0] in OPEN_QUESTION_WORDS:
        cues["question word"] = 1.0
    if "question mark" in cues and {"which", "what"} & set(tokens[1:]):
        cues["which/what in a question"] = 0.8
    facts = sum(1 for t in tokens if t in FACT_WORDS)
    if facts:
        cues["factual words"] = min(2.0, 0.7 * facts)
    if YEAR.search(text):
        cues["a year"] = 0.7
    proper = len(PROPER.findall(text))
    if proper:
        cues["proper nouns"] = 0.6 if proper == 1 else 0.9
    if words & SOURCE_WORDS:
        cues["asks for sources"] = 1.5
    if _has(joined, VERIFY):
        cues["asks to verify"] = 1.5
    if CREATIVE.intersection(tokens[:3]) and words & CREATIVE_WORDS or tokens[:2] == ["come", "up"] or \
            {"imagine", "pretend", "invent", "imagina", "immagina"}.intersection(tokens[:3]):
        cues["creative writing"] = -3.0
    not_code = sum(joined.count(f" {p} code ") for p in ("area", "zip", "postal", "dress", "morse", "country"))
    if "```" in text or (CODE_WORDS - {"code"}) & words or joined.count(" code ") > not_code:
        cues["code"] = -2.5
    if _has(joined, OPINION):
        cues["opinion"] = -2.5
    numbers = len(NUMBER.findall(text))
    if ARITHMETIC.search(text) or words & MATH_WORDS or numbers >= 3 or "$" in text or \
            (numbers >= 2 and _has(joined, HOW_MUCH[:2])):
        cues["maths to compute"] = -2.5
    if tokens and tokens[0] in REWRITE or "the following text" in text.lower():
        cues["rework a given text"] = -2.5
    if _has(opening, ADVICE):
        cues["advice or how-to"] = -1.5
    if text.count(",") >= 4 and len(tokens) <= 2 * text.count(",") + 2:
        cues["a word list"] = -3.0
    if tokens and tokens[0] in CHAT and len(tokens) <= 8:
        cues["chat"] = -2.0
    return cues


def fact_check_score(text: str) -> tuple[float, dict[str, float]]:
    cues = fact_cues(text)
    return 1.0 / (1.0 + math.exp(-(BIAS + sum(cues.values())))), cues


class FactCheckParams(Params):
    threshold: float = Field(0.5, ge=0, le=1, description="matched when the score reaches it")
    scope: Literal["last_user", "user", "all"] = "last_user"


@register("fact_check")
class FactCheckSignal(Signal):
    """Score = how much answering rests on checkable facts; the detail lists the cues found and their weights."""

    Params = FactCheckParams

    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        params: FactCheckParams = self.params  # type: ignore[assignment]
        score, cues = fact_check_score(ctx.text(params.scope))
        return SignalResult(score >= params.threshold, score, {"cues": cues})
