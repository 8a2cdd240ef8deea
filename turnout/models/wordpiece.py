"""BERT's uncased WordPiece for printable-ASCII text, in Python with a per-word cache: the token ids the `tokenizers`
library gives (BertNormalizer with lower-casing, BertPreTokenizer, WordPiece; no special tokens added) at a
fraction of its per-call cost on a prompt, where a call into it costs more than the few dozen words it reads.

Only text made of printable ASCII, tab, newline and carriage return is read here, and none holding an added token
("[UNK]", "[PAD]"), which the library matches before normalising: there BertNormalizer only lower-cases (and turns
the three whitespace controls into spaces), and BertPreTokenizer splits on whitespace and isolates each ASCII
punctuation character. Any other text goes to the library (`AsciiWordPiece.ids` returns None), so the two agree on
every text (tests/models/test_encoder_speed_equivalence.py checks them against each other)."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

# what BertPreTokenizer makes of lower-cased ASCII: runs of letters and digits, and each punctuation character
# (Rust's is_ascii_punctuation: !"#$%&'()*+,-./ :;<=>?@ [\]^_` {|}~) on its own
_PIECES = re.compile(r"[a-z0-9]+|[!-/:-@\[-`{-~]")
# printable ASCII and the whitespace controls the normaliser keeps (as spaces); anything else: the library
_PLAIN = re.compile(r"[\t\n\r -~]*")


class AsciiWordPiece:
    """Token ids of a plain-ASCII text, [UNK] left out, from a `tokenizers` WordPiece model's vocabulary."""

    def __init__(self, tokenizer: Any, cache_words: int = 1 << 16) -> None:
        config = _config(tokenizer)
        self.vocab: dict[str, int] = config["vocab"]
        self.unk = self.vocab[config["unk_token"]]
        self.prefix: str = config["continuing_subword_prefix"]
        self.max_chars: int = config["max_input_chars_per_word"]
        self.added = tuple(token.content for token in tokenizer.get_added_tokens_decoder().values())
        self.word: Callable[[str], tuple[int, ...]] = lru_cache(maxsize=cache_words)(self._word)

    def _word(self, word: str) -> tuple[int, ...]:
        """WordPiece's greedy longest-match-first split of one word, as ids; () when it is [UNK]."""
        if len(word) > self.max_chars:
            return ()
        out, start, vocab = [], 0, self.vocab
        while start < len(word):
            end = len(word)
            while start < end:
                found = vocab.get(word[start:end] if start == 0 else self.prefix + word[start:end])
                if found is not None:
                    break
                end -= 1
            else:
                return ()  # a piece with no entry: the whole word is [UNK]
            out.append(found)
            start = end
        return tuple(t for t in out if t != self.unk)

    def ids(self, text: str) -> list[int] | None:
        """The ids (without [UNK]) of `text`, or None when it is not plain ASCII or holds an added token."""
        # isprintable(): an ASCII text without control characters, in one C loop; with a tab or a newline, the class
        if not text.isascii() or not (text.isprintable() or _PLAIN.fullmatch(text)) \
                or ("[" in text and any(t in text for t in self.added)):
            return None
        out: list[int] = []
        word = self.word
        for piece in _PIECES.findall(text.lower()):
            out += word(piece)
        return out


def _config(tokenizer: Any) -> dict[str, Any]:
    """The WordPiece model's settings and vocabulary, checked to be the pipeline this module reproduces."""
    import json

    spec = json.loads(tokenizer.to_str())
    model, normalizer, pre = spec.get("model") or {}, spec.get("normalizer") or {}, spec.get("pre_tokenizer") or {}
    expected = (model.get("type") == "WordPiece" and normalizer.get("type") == "BertNormalizer"
                and normalizer.get("lowercase") is True and normalizer.get("clean_text") is True
                and normalizer.get("strip_accents") in (None, True) and pre.get("type") == "BertPreTokenizer"
                and spec.get("post_processor") is None)
    if not expected:
        raise ValueError("AsciiWordPiece reads only an uncased BERT WordPiece tokenizer without a post-processor")
    return model
