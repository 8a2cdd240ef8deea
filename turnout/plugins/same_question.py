"""Is a new prompt the same question as a cached one? The check after the embedding.

A sentence embedding scores a near miss (the same sentence with one thing changed) as high as a rephrasing, often
higher. A rephrasing changes how the question is asked: its framing words (what / which / how do I / can you), or
the order of its content words. A near miss keeps the frame and changes the content. So, in order:

1. other numbers: 12 vs 14, World War I vs II, the first vs the second: another question;
2. one side negated and the other not (n't, not, no, never, without): another question;
3. asking for another kind of thing: who vs when vs where vs why: another question;
4. the same content words in the same frame, in another order ("Fahrenheit to Celsius" vs "Celsius to
   Fahrenheit"): another question;
5. asked another way (other framing words) or the content rearranged: a rephrasing, left to the embedding;
6. otherwise, in the same frame, any content word that the other side lacks in every form (key vs value, Spanish
   vs French, enable vs disable, a year vs a leap year) makes another question, unless the operator declared
   the two words synonyms. Forms of one word (invent/inventor, dict/dictionaries) count as the same word.

The cost: a synonym swapped in the same frame ("Write a haiku" / "Compose a haiku") is a miss.

Rules 5 and 6 read how a question is written, and near misses are not always written in one frame: "How can I
sort a Python dict by its keys?" / "What's the way to order a dictionary in Python by value?" is another question
asked another way. So the semantic cache's default judgement, `strict`, adds:

7. each side has a content word that the other lacks in every form (key / value, enable / turn off, Chicago /
   Denver): a word was swapped for another, and nothing here can tell a synonym from a contrast (an embedding
   scores both alike): another question, unless the operator declared the two words synonyms. A rephrasing
   that only adds words on one side ("Which city is the capital of France?") or rearranges them still passes;
8. the same two things the other way round, in any frame: "X to Y" or "X into Y" on one side, "Y to X" or
   "X from Y" on the other (Celsius to Fahrenheit / turning Fahrenheit into Celsius): another question.

Its cost: a synonym swapped in any frame (need / require, often / frequently) is a miss, so `strict` trades hits
for precision. Measured by `benchmarks/cache.py` on tests/data/cache_pairs/ (both classes vary their frame) and
on the older tests/data/paraphrases.jsonl; figures in docs/plugins.md."""

from __future__ import annotations

import functools
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_NUMBER = re.compile(r"(?<![^\W\d_])\d+(?:[.,]\d+)*")  # not inside a word: k8s, gpt4
_WORD = re.compile(r"[^\W\d_][\w'+#-]*", re.UNICODE)
_ORDINALS = {"first": "1", "second": "2", "third": "3", "fourth": "4", "fifth": "5", "sixth": "6", "seventh": "7",
             "eighth": "8", "ninth": "9", "tenth": "10"}
_ROMAN = {"ii": "2", "iii": "3", "iv": "4", "vi": "6", "vii": "7", "viii": "8", "ix": "9"}
# The words that frame a question (what is asked, by whom, how politely) ...
_FRAMING = frozenset("""how what which who whom whose why when where is are was were be been do does did can could
should would will shall may might i me my you your we our it its this that these those there here please tell give
explain define way get make just also really so if then""".split())
# ... the words that relate its content words to each other ...
_RELATIONAL = frozenset("""of to in on at for by with and or about into from as than some any much many more most
very""".split())
_ARTICLES = frozenset({"a", "an", "the"})
# ... and negation, which turns a question into another
_NEGATIONS = frozenset({"not", "no", "never", "without", "cannot", "nothing", "none"})
_DIRECTIONS = {"to": True, "into": True, "from": False}  # forward: X to Y; backward: Y from X
_ASKS = {"who": "person", "whom": "person", "whose": "person", "when": "time", "where": "place", "why": "reason"}


_KINDS = {**dict.fromkeys(_FRAMING, "framing"), **dict.fromkeys(_RELATIONAL, "relational"),
          **dict.fromkeys(_ARTICLES, "article"), **dict.fromkeys(_NEGATIONS, "negation")}


def _kind(raw: str, word: str) -> str:
    if len(raw) > 1 and raw.isupper():
        return "content"  # US, IT, WHO
    kind = _KINDS.get(word) or _KINDS.get(word.removesuffix("'s"))
    return kind or ("negation" if word.endswith("n't") else "content")


_SHORT = 1000  # characters: a question; longer prompts are parsed into the small cache
_parse_short = functools.lru_cache(maxsize=4096)(lambda text: Question._parse(text))  # ≤ ~40 MB
_parse_long = functools.lru_cache(maxsize=64)(lambda text: Question._parse(text))  # ≤ ~5 MB


def content_form(word: str) -> str:
    """One form for a content word's variants: case, possessive and plural s."""
    word = word.casefold().strip("'")  # a closing quote: 'carpe diem'
    return word.removesuffix("'s").removesuffix("s") or word


@dataclass(frozen=True)
class Question:
    numbers: tuple[str, ...]  # sorted: digits, ordinals and Roman numerals
    content: tuple[str, ...]  # the content words in order, in their content_form
    framing: tuple[str, ...]  # the framing words in order
    frame: tuple[str, ...]  # the framing and relational words in order
    negations: int
    asks: frozenset[str]
    directed: frozenset[tuple[str, str]] = frozenset()  # (from, to): "X to Y", "X into Y", "Y from X"

    @classmethod
    def parse(cls, text: str) -> Question:
        """Cached, as a cached prompt is parsed again at every lookup that finds it; long prompts (~80 KB parsed
        at 8,000 characters) in a cache of their own, so 4,096 of them cannot hold a third of a gigabyte."""
        return (_parse_short if len(text) <= _SHORT else _parse_long)(text)

    @classmethod
    def _parse(cls, text: str) -> Question:
        numbers, content, framing, frame, negations = _NUMBER.findall(text), [], [], [], 0
        directed, pending = set(), None
        for raw in _WORD.findall(text):
            word = raw.casefold()
            if word in _ORDINALS or (word in _ROMAN and raw.isupper()):
                numbers.append(_ORDINALS.get(word) or _ROMAN[word])
                continue
            kind = _kind(raw, word)
            if kind == "content":
                form = content_form(word)
                if pending:
                    directed.add((pending[0], form) if pending[1] else (form, pending[0]))
                    pending = None
                content.append(form)
            elif kind == "negation":
                negations += 1
            elif kind != "article":
                frame.append(word)
                if kind == "framing":
                    framing.append(word)
                elif word in _DIRECTIONS and content:
                    pending = (content[-1], _DIRECTIONS[word])
        return cls(tuple(sorted(numbers)), tuple(content), tuple(framing), tuple(frame), negations,
                   frozenset(_ASKS[w] for w in framing if w in _ASKS), frozenset(directed))


# What may follow the shared stem of two forms of one word (after content_form took a plural s off): without it,
# Java would be a form of JavaScript, and pass of passport
_ENDINGS = frozenset("""e ed d ing er or ion ation ive ly ie y al ment ness ity able ible ic ical ist ism ary ionary
ionarie ure ence ance ent ant ize ise ized ised izing ising ization isation en ten ous se""".split())


def _forms_of_one_word(a: str, b: str) -> bool:
    """invented/inventor, dict/dictionaries, meditation/meditating: a long common prefix, then word endings."""
    common = len(os.path.commonprefix([a, b]))
    if common < 4 or common < 0.75 * min(len(a), len(b)):
        return False
    return any(all(not rest or rest in _ENDINGS for rest in (a[k:], b[k:])) for k in range(common, 3, -1))


_MAX_ENDING = max(map(len, _ENDINGS))
_SCANNED = 8  # a group of leftovers this small is scanned in order; a larger one is looked up by stem


def _stems(word: str) -> list[str]:
    """Every stem (4 letters or more) that leaves the word as the stem plus nothing or one of _ENDINGS: two words
    are forms of one word (given _forms_of_one_word's length rule) exactly when they share a stem."""
    return [word[:len(word) - k] for k in range(min(_MAX_ENDING, len(word) - 4) + 1)
            if k == 0 or word[len(word) - k:] in _ENDINGS]


class _Leftovers:
    """The other side's unpaired words sharing one four-letter prefix, in order, each with a count. A pending
    word takes the first in order that is a form of it, as a scan would; a large group is looked up through the
    words' stems, so thousands of words sharing four letters ("abcdaa abcdab …") cost no pairwise scan (two
    9,000-character prompts of them took 1.4 s before)."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.counts: list[int] = []
        self.by_stem: dict[str, list[int]] | None = None

    def add(self, word: str, count: int) -> None:
        self.words.append(word)
        self.counts.append(count)

    def take(self, word: str) -> bool:
        """Pair `word` off with the first leftover that is a form of it; False when none is."""
        if len(self.words) <= _SCANNED:
            order: Iterable[int] = range(len(self.words))
        else:
            if self.by_stem is None:
                self.by_stem = defaultdict(list)
                for i, other in enumerate(self.words):
                    for stem in _stems(other):
                        self.by_stem[stem].append(i)
            order = sorted({i for stem in _stems(word) for i in self.by_stem.get(stem, ())})
        j = next((j for j in order if self.counts[j] and _forms_of_one_word(word, self.words[j])), None)
        if j is None:
            return False
        self.counts[j] -= 1
        return True

    def left(self) -> list[str]:
        return [word for word, count in zip(self.words, self.counts) for _ in range(count)]


def _unshared(words_a: Iterable[str], words_b: Iterable[str]) -> tuple[list[str], list[str]]:
    """The content words of each side that the other side lacks in any form. Linear in the words: equal words
    pair off by count, and a leftover is compared only with the other side's leftovers that share a stem with it
    (two forms of one word share at least four letters): two 8,000-character prompts of distinct words are judged
    in ~1.5 ms once parsed (~4.5 ms with both parses), not in seconds."""
    left = Counter(words_b)
    pending = []
    for word in words_a:
        if left[word]:
            left[word] -= 1
        else:
            pending.append(word)
    by_prefix: dict[str, _Leftovers] = defaultdict(_Leftovers)
    for word, count in left.items():
        by_prefix[word[:4]].add(word, count)  # a spent word (count 0) too: the groups keep the order a scan had
    only_a = []
    for word in pending:
        group = by_prefix.get(word[:4])
        if group is None or not group.take(word):
            only_a.append(word)
    return only_a, [word for group in by_prefix.values() for word in group.left()]


def is_one_word(text: str) -> bool:
    return _WORD.fullmatch(text) is not None


def synonym_forms(groups: Iterable[Iterable[str]]) -> dict[str, str]:
    """Each word of a group → the group's first word, all in their content form."""
    out: dict[str, str] = {}
    for group in groups:
        forms = [content_form(word) for word in group]
        out.update((form, forms[0]) for form in forms[1:] if form != forms[0])
    return out


def same_question(a: str, b: str, synonyms: Mapping[str, str] | None = None, strict: bool = False) -> bool:
    """False when one is a near miss of the other (rules 1-6, and 7-8 when `strict`; see the module); True for a
    rephrasing or the same words. Symmetric: judged both ways, as the greedy pairing of word forms can depend on
    the order."""
    qa, qb = Question.parse(a), Question.parse(b)
    return _judge(qa, qb, synonyms or {}, strict) and _judge(qb, qa, synonyms or {}, strict)


JUDGES = ("strict", "frame")


def judge(name: str, a: str, b: str, synonyms: Mapping[str, str] | None = None) -> bool:
    """The semantic cache's judgement by name: `frame` (rules 1-6) or `strict` (rules 1-8)."""
    return same_question(a, b, synonyms, strict=name == "strict")


def _judge(qa: Question, qb: Question, synonyms: Mapping[str, str], strict: bool) -> bool:
    if qa.numbers != qb.numbers or qa.negations % 2 != qb.negations % 2:
        return False
    if qa.asks and qb.asks and qa.asks != qb.asks:
        return False
    if qa.content != qb.content and sorted(qa.content) == sorted(qb.content) and qa.frame == qb.frame:
        return False
    content_a, content_b = ([synonyms.get(w, w) for w in q.content] for q in (qa, qb))
    only_a, only_b = _unshared(content_a, content_b)
    if strict and only_a and only_b:
        return False  # rule 7: a word swapped for another, in whatever frame
    if strict and any((y, x) in qb.directed and (x, y) not in qb.directed for x, y in qa.directed):
        return False  # rule 8: the same two things, the other way round (Celsius to Fahrenheit / from)
    if qa.framing != qb.framing or _shared_order(content_a, only_a) != _shared_order(content_b, only_b):
        return True  # asked another way, or the words rearranged: a rephrasing
    return not (only_a or only_b)  # in the same frame, any other content word makes another question


def _shared_order(words: list[str], unshared: list[str]) -> list[str]:
    """The words in order without the unshared ones, cut to a stem that two forms of one word share."""
    drop = Counter(unshared)  # the first occurrences go, in linear time
    out = []
    for word in words:
        if drop[word]:
            drop[word] -= 1
        else:
            out.append(word[:4])
    return out
