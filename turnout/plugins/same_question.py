"""Is a new prompt the same question as a cached one? The check after the embedding.

A sentence embedding scores a near miss — the same sentence with one thing changed — as high as a rephrasing,
often higher. Each rule below rejects one kind of near miss; a rephrasing changes the sentence's frame (its
function words, its order, several words at once) and passes them all:

- numbers: 12 vs 14, World War I vs II, the first vs the second;
- moved words: the same words in the same frame, in another order ("Fahrenheit to Celsius" vs "Celsius to
  Fahrenheit");
- what is asked for: who vs when vs where vs why;
- a swapped word: one content word replaced by another in an otherwise identical question (sort by key / by
  value, into Spanish / into French, enable / disable), unless the operator declared the two synonyms;
- an added qualifier: one content word added to an otherwise identical question (a year / a leap year).

Measured on tests/data/paraphrases.jsonl by `benchmarks/cache.py` (both splits, in the closing notes and
docs/plugins.md)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher

_NUMBER = re.compile(r"(?<![^\W\d_])\d+(?:[.,]\d+)*")  # not inside a word: k8s, gpt4
_WORD = re.compile(r"[^\W\d_][\w'+#-]*", re.UNICODE)
_ORDINALS = {"first": "1", "second": "2", "third": "3", "fourth": "4", "fifth": "5", "sixth": "6", "seventh": "7",
             "eighth": "8", "ninth": "9", "tenth": "10"}
_ROMAN = {"ii": "2", "iii": "3", "iv": "4", "vi": "6", "vii": "7", "viii": "8", "ix": "9"}
_FUNCTION = frozenset("""a an the of to in on at for by with and or is are was were be been do does did how what
which who whom whose why when where can could should would will shall may might i me my you your we our it its this
that these those there here please tell give explain define some any about into from as than so if then just also
really much many more most very way get make""".split())
_ARTICLES = frozenset({"a", "an", "the"})
_ASKS = {"who": "person", "whom": "person", "whose": "person", "when": "time", "where": "place", "why": "reason"}


def _is_function(word: str) -> bool:
    return word in _FUNCTION or word.removesuffix("'s") in _FUNCTION


def content_form(word: str) -> str:
    """One form for a content word's variants: case, possessive and plural s."""
    word = word.casefold()
    return word.removesuffix("'s").rstrip("s") or word


@dataclass(frozen=True)
class Question:
    numbers: tuple[str, ...]  # sorted: digits, ordinals and Roman numerals
    tokens: tuple[str, ...]  # every word in order, content words in their content_form
    content: tuple[str, ...]  # the content words in order
    frame: tuple[str, ...]  # the function words in order, articles left out
    asks: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Question:
        numbers, tokens, content, frame = _NUMBER.findall(text), [], [], []
        for raw in _WORD.findall(text):
            word = raw.casefold()
            if word in _ORDINALS or (word in _ROMAN and raw.isupper()):
                numbers.append(_ORDINALS.get(word) or _ROMAN[word])
                tokens.append(word)
            elif _is_function(word):
                tokens.append(word)
                if word not in _ARTICLES:
                    frame.append(word)
            else:
                content.append(content_form(word))
                tokens.append(content[-1])
        return cls(tuple(sorted(numbers)), tuple(tokens), tuple(content), tuple(frame),
                   frozenset(_ASKS[w] for w in tokens if w in _ASKS))


def _forms_of_one_word(a: str, b: str) -> bool:
    """invented/inventor, dict/dictionaries, meditation/meditating: a long common prefix."""
    common = len(os.path.commonprefix([a, b]))
    return common >= 4 and common >= 0.75 * min(len(a), len(b))


def _unshared(words_a: Iterable[str], words_b: Iterable[str]) -> tuple[list[str], list[str]]:
    """The content words of each side that the other side lacks in any form."""
    rest, only_a = list(words_b), []
    for word in words_a:
        j = next((j for j, other in enumerate(rest) if other == word), None)
        if j is None:
            j = next((j for j, other in enumerate(rest) if _forms_of_one_word(word, other)), None)
        if j is None:
            only_a.append(word)
        else:
            del rest[j]
    return only_a, rest


def synonym_pairs(groups: Iterable[Iterable[str]]) -> frozenset[frozenset[str]]:
    """Every pair of words within each group, in their content form."""
    forms = [sorted({content_form(word) for word in group}) for group in groups]
    return frozenset(frozenset((x, y)) for words in forms for i, x in enumerate(words) for y in words[i + 1:])


def same_question(a: str, b: str, synonyms: frozenset[frozenset[str]] = frozenset()) -> bool:
    """False when b is a near miss of a (see the module's rules); True for a rephrasing or the same words."""
    qa, qb = Question.parse(a), Question.parse(b)
    if qa.numbers != qb.numbers:
        return False
    if qa.asks and qb.asks and qa.asks != qb.asks:
        return False
    if qa.content != qb.content and sorted(qa.content) == sorted(qb.content) and qa.frame == qb.frame:
        return False
    edits = [op for op in SequenceMatcher(None, qa.tokens, qb.tokens, autojunk=False).get_opcodes()
             if op[0] != "equal"]
    if len(edits) != 1:  # unchanged, or rephrased in several places
        return True
    tag, i1, i2, j1, j2 = edits[0]
    if any(_is_function(w) and w not in _ARTICLES for w in qa.tokens[i1:i2] + qb.tokens[j1:j2]):
        return True  # the frame changed around the words: a rephrasing
    only_a, only_b = _unshared(qa.content, qb.content)
    if len(only_a) == 1 == len(only_b):
        return frozenset((only_a[0], only_b[0])) in synonyms
    return not (tag in ("insert", "delete") and (only_a or only_b))
