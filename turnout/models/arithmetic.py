"""Re-check the arithmetic a worked answer claims, without eval(): the `arithmetic` judge and the scorer's
arithmetic features use it.

A *claim* is a computation the answer states with its result:
- `a op b ... = c` (also `equals`, `is`, `makes`, `gives` before the result; `x`, `×`, `÷`, `times`, `plus`,
  `minus`, `divided by`, `multiplied by` as operators), with money signs, thousands commas, percent signs and
  unit words between the numbers ("24 x $125 = $3,000", "1 liter/day * 3 days = 3 liters"). A `/` followed by a
  word is a unit ("per day"), not a division;
- GSM8K's calculator annotations `<<a*b=c>>`;
- `P% of N is V` / `= V`, `a/b of N is V`, `half (a third, a quarter) of N is V`.

Each claim's left side is parsed into numbers, `+ - * /` and parentheses and evaluated by walking a restricted
`ast` tree (numeric constants, the four binary operators and unary minus only). The claimed result must match
to `rel_tol` (default 0.1 %) or `abs_tol` (default a cent), or to the precision the claim was written in when
it has decimals or is marked approximate (`≈`, "about", "approximately"); a percent result may state the share
("4 / 20 = 20%"). A chain `a + b = c + d = e` is two claims; a side matches when it equals the next side's
leading number or the next side's own computation. Algebra over a variable ("6x + 7 = 37") is skipped. What is
not a claim (a lone number, a unit conversion spelled in words) is not checked: the checker finds mistakes in
what is computed, never whether the right thing was computed."""

from __future__ import annotations

import ast
import math
import operator
import re
from bisect import bisect_right
from dataclasses import dataclass, field

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
# a number starts where no digit or point precedes it: a pattern that starts
# with a number is then tried once per number, not once per digit (a run of 5,000 digits cost 2 s before)
_NUM = r"(?<![\d.])(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
_WORD_OPS = ((re.compile(r"\bmultiplied by\b", re.IGNORECASE), " * "), (re.compile(r"\bdivided by\b", re.IGNORECASE), " / "),
             (re.compile(r"\btimes\b", re.IGNORECASE), " * "), (re.compile(r"\bplus\b", re.IGNORECASE), " + "),
             (re.compile(r"\bminus\b", re.IGNORECASE), " - "))
# the word or sign that introduces a stated result
_EQUALS = re.compile(r"(=|≈|~=|\bequals?\b|\bis\b|\bmakes\b|\bgives\b)", re.IGNORECASE)
_CALC = re.compile(r"<<([^=<>]{1,200})=([^<>]{1,40})>>")
_OF = re.compile(rf"(?:(?P<pct>{_NUM})\s*(?:%|percent)|(?<![\d.])(?P<num>\d{{1,9}})\s*/\s*(?P<den>\d{{1,9}})|(?P<word>half|a third|one "
                 rf"third|a quarter|one quarter|a fifth|one fifth))\s+of\s+(?:the\s+)?\$?(?P<base>{_NUM})"
                 rf"(?:\s+[a-z]+){{0,2}}\s*(?:is|=|equals|would be|will be)\s*(?:about\s+)?\$?(?P<value>-?{_NUM})",
                 re.IGNORECASE)
_FRACTION_WORDS = {"half": 0.5, "a third": 1 / 3, "one third": 1 / 3, "a quarter": 0.25, "one quarter": 0.25,
                   "a fifth": 0.2, "one fifth": 0.2}
# a tight fraction "1/6" is one operand: "4 / 1/6" is 4 ÷ (1/6), as it is meant
_TOKEN = re.compile(rf"(?<![\d.])\d{{1,9}}/\d{{1,9}}(?![\d.])|\$?(?:{_NUM})%?|[A-Za-z][A-Za-z']*|[-+*/×÷()]|\S")
_FINAL = re.compile(rf"(?:####|answer is|answer:|final answer[^0-9$-]{{0,20}})\s*+(?:\$\s*+)?(-?(?:{_NUM}))", re.IGNORECASE)
_ANY_NUMBER = re.compile(rf"-?\$?(?:{_NUM})")
_ENDS_COMPUTATION = set("0123456789)%")
_SEPARATOR = re.compile(r"[=≈:]")  # what ends a claim's left side
_OPERATION_NEXT = re.compile(r"\s*[-+*/x×]\s*\d")
RIGHT_CHARS = 400  # a claim's right side is read this far
LEFT_CHARS = 240  # and its left side (an expression is read from its last 240 characters)
# words that may sit between numbers and operators as units ("3 days * 24 hours/day"); up to two per number
_MAX_UNIT_WORDS = 2


@dataclass(frozen=True)
class Claim:
    text: str  # the claim as written, e.g. "2/3*24=32"
    expression: str  # what was evaluated, e.g. "2/3*24"
    value: float  # what the expression is
    claimed: float  # what the answer says it is
    correct: bool


@dataclass
class Check:
    claims: list[Claim] = field(default_factory=list)
    final: float | None = None  # the stated final answer
    last_result: float | None = None  # the last claimed result
    results: list[float] = field(default_factory=list)  # every claimed result, in order

    @property
    def wrong(self) -> list[Claim]:
        return [c for c in self.claims if not c.correct]

    @property
    def final_is_last_result(self) -> bool:
        return self.final is not None and self.last_result is not None and _close(self.final, self.last_result)

    @property
    def final_is_a_result(self) -> bool:
        return self.final is not None and any(_close(self.final, r) for r in self.results)


def number(text: str) -> float | None:
    cleaned = text.replace("$", "").replace(",", "").rstrip(".").strip()
    percent = cleaned.endswith("%")
    try:
        value = float(cleaned.rstrip("%"))
    except ValueError:
        return None
    return value / 100 if percent else value


def _close(a: float, b: float, rel_tol: float = 1e-3, abs_tol: float = 0.011) -> bool:
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return float(_OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right)))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand)
    raise ValueError("not arithmetic")


def evaluate(expression: str) -> float | None:
    """The value of `+ - * /` over numbers and parentheses, or None (never eval(); no names, no calls, no **)."""
    if len(expression) > 200 or not re.fullmatch(r"[\d.+\-*/() ]+", expression):
        return None
    try:
        return _evaluate(ast.parse(expression, mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError, OverflowError):
        return None


def _expression_before(text: str) -> str | None:
    """The arithmetic that ends `text` (the left side of a claim) as a clean `+ - * /` string, or None when the
    text does not end in a computation with at least one operator between two numbers."""
    tokens = _TOKEN.findall(text[-LEFT_CHARS:])
    out: list[str] = []
    units = 0  # unit words seen since the last number
    depth = 0
    operators = 0
    i = len(tokens) - 1
    # the last number's trailing units ("12 apples.", "3 liters/day")
    while i >= 0 and (tokens[i][0].isalpha() or tokens[i] in "/.,") and tokens[i] != "x" and units < 4:
        i -= 1
        units += 1
    units = 0
    while i >= 0:
        tok = tokens[i]
        if re.fullmatch(r"\d+/\d+", tok):
            if out and (out[0][0].isdigit() or out[0][0] == "("):
                break
            num, den = tok.split("/")
            out[:0] = ["(", num, "/", den, ")"]
            units = 0
            i -= 1
            continue
        if tok[0].isalpha() and (tok != "x" or (out and out[0] in "+-*/)")):
            if len(tok) == 1 and tok not in "aA" and out and out[0] in "+-*/)":
                return None  # "6x + 7 = 37", "4A - 8": algebra over a variable, not arithmetic
            # a unit word, or "/word" (per): skip; a word right after an operator (reading backwards) ends it
            # a word just before a number (in reading order) is not that number's unit: the computation starts
            # after it ("he had 2 x 6"); a word before an operator is the unit of the number before it
            if not out or out[0] not in "+-*/":
                break
            if units >= _MAX_UNIT_WORDS:  # too many words after an operand: not a computation we can read
                return None
            units += 1
            if i > 0 and tokens[i - 1] == "/":  # "liters/day": the slash is part of the unit
                i -= 1
            i -= 1
            continue
        if re.fullmatch(rf"\$?(?:{_NUM})%?", tok):
            if out and (out[0][0].isdigit() or out[0][0] == "."):
                break  # two numbers in a row: the computation started after this one
            value = number(tok)
            if value is None:
                break
            out.insert(0, repr(value))
            units = 0
        elif tok in ("x", "×", "*", "+", "-", "/", "÷"):
            if not out or out[0] in "+-*/":
                break
            out.insert(0, {"x": "*", "×": "*", "÷": "/"}.get(tok, tok))
            operators += 1
        elif tok == ")":
            depth += 1
            out.insert(0, ")")
        elif tok == "(":
            if depth == 0:
                break
            depth -= 1
            out.insert(0, "(")
        else:
            break
        i -= 1
    if out and out[0] in "+*/":  # an operator whose left operand is not a number: unreadable
        return None
    while depth > 0 and out and out[-1] == ")":
        out.pop()
        depth -= 1
    expression = " ".join(out)
    if operators < 1 or depth != 0 or not re.search(r"\d\s*[-+*/]\s*\(?\s*-?\d", expression):
        return None
    return expression


def _leading_number(text: str) -> tuple[float, int, bool] | None:
    """The number a claim's right side starts with (its claimed result, as written), the decimals it was written
    with, and whether it is a percent."""
    match = re.match(rf"\s*(?:about\s+|approximately\s+)?\$?\s*(-?(?:{_NUM}))(?:/(\d+))?\s*(%?)(?![A-Za-z(\d])",
                     text, re.IGNORECASE)
    if match is None:
        return None  # no number, or one that is a coefficient ("2(S + 16)", "5C")
    raw = match.group(1).replace(",", "")
    value = number(raw)
    if value is None:
        return None
    if match.group(2):  # "= 20/3 liters"
        return (value / int(match.group(2)) if int(match.group(2)) else value), 6, bool(match.group(3))
    decimals = len(raw.split(".")[1]) if "." in raw else 0
    return value, decimals, bool(match.group(3))


def _matches(value: float, claimed: tuple[float, int, bool], approximate: bool, rel_tol: float,
             abs_tol: float) -> bool:
    number_, decimals, percent = claimed
    # "(4/20) * 100 = 20%" and "4/20 = 20%" both state 0.2
    for target in (number_, number_ / 100) if percent else (number_,):
        if _close(value, target, rel_tol, abs_tol):
            return True
        if (approximate or decimals > 0) and abs(value - target) <= 0.5 * 10 ** -decimals + 1e-9:
            return True  # written to a precision: "33.33", "≈ 33"
    return False


def _clean(text: str) -> str:
    """LaTeX and word operators as plain `+ - * /`: "\\frac{3}{4}", "\\times", "\\*", "times", "divided by"."""
    text = re.sub(r"\\[dt]?frac\{([^{}]{1,30})\}\{([^{}]{1,30})\}", r"(\1)/(\2)", text)
    text = re.sub(r"\\(times|cdot)", " * ", text).replace("\\div", " / ").replace("\\*", "*").replace("\\$", "$")
    text = re.sub(r"\\[()\[\]]|\\text\{[^{}]*\}|\\,", " ", text)
    for pattern, op in _WORD_OPS:
        text = pattern.sub(op, text)
    return text


def check(text: str, max_chars: int = 8000, rel_tol: float = 1e-3, abs_tol: float = 0.011) -> Check:
    """Every claim in `text` with whether it is right, the stated final answer and the last claimed result."""
    text = _clean(text[:max_chars])
    found: list[tuple[int, Claim]] = []
    for match in _CALC.finditer(text):  # <<2*6=12>>
        found += _claim(match.start(), match.group(1), "=", match.group(2), rel_tol, abs_tol)
    plain = _CALC.sub(" ", text)  # the annotation is checked above; the result written after it stays
    start = 0
    for line in plain.splitlines(keepends=True):
        separators = [m.end() for m in _SEPARATOR.finditer(line)]
        for match in _EQUALS.finditer(line):
            sign = match.group(1).lower()
            # the left side starts after the last separator before the sign, at most LEFT_CHARS before it; the
            # right side is read up to RIGHT_CHARS: each claim costs what is near it, so a line of thousands of signs
            # stays linear
            before = bisect_right(separators, match.start())
            left = line[max(separators[before - 1] if before else 0, match.start() - LEFT_CHARS): match.start()]
            right = line[match.end(): match.end() + RIGHT_CHARS]
            if sign != "=" and left.rstrip()[-1:] not in _ENDS_COMPUTATION:
                continue  # "is", "makes" ...: only right after a computation
            found += _claim(start + match.start(), left, sign, right, rel_tol, abs_tol)
        start += len(line)
    for match in _OF.finditer(plain):  # 20% of 50 is 10, 3/4 of 20 is 15, half of 12 is 6
        base, claimed = number(match.group("base")), _leading_number(match.group("value"))
        if base is None or claimed is None or _OPERATION_NEXT.match(plain, match.end()):
            continue  # "20% of 50 is 0.2 * 50 = 10": the computation after it is the claim
        if match.group("pct"):
            share = (number(match.group("pct")) or 0.0) / 100
        elif match.group("num"):
            share = int(match.group("num")) / max(1, int(match.group("den")))
        else:
            share = _FRACTION_WORDS[match.group("word").lower()]
        value = share * base
        found.append((match.start(), Claim(match.group(0), f"{share!r} * {base!r}", value, claimed[0],
                                           _matches(value, claimed, False, rel_tol, abs_tol))))
    found.sort(key=lambda item: item[0])
    out = Check()
    for _, claim in found:  # "2 x 6 = <<2*6=12>>12" states one claim twice: count it once
        if out.claims and (out.claims[-1].value, out.claims[-1].claimed) == (claim.value, claim.claimed):
            continue
        out.claims.append(claim)
    out.results = [claim.claimed for claim in out.claims]
    out.last_result = out.results[-1] if out.results else None
    out.final = final_answer(text)
    return out


def _claim(at: int, left: str, sign: str, right: str, rel_tol: float, abs_tol: float) -> list[tuple[int, Claim]]:
    """The claim `left sign right` when left ends in a computation and right starts with a number."""
    expression = _expression_before(left)
    claimed = _leading_number(right)
    if not expression or not claimed:
        return []
    value = evaluate(expression)
    if value is None:
        return []
    approximate = sign in ("≈", "~=") or bool(re.match(r"\s*(about|approximately|roughly)", right, re.IGNORECASE))
    correct = _matches(value, claimed, approximate, rel_tol, abs_tol)
    if not correct:  # a chain "200 - (90 + 45) = 200 - 135 = 65": the next side may be a computation itself
        nxt = re.split(r"[=≈]", right, maxsplit=1)
        if len(nxt) == 2 and (chained := _expression_before(nxt[0])) is not None:
            chained_value = evaluate(chained)
            correct = chained_value is not None and _close(value, chained_value, rel_tol, abs_tol)
    written = f"{expression} {sign} {right.strip()[:24]}".strip()
    return [(at, Claim(written, expression, value, claimed[0], correct))]


def final_answer(text: str) -> float | None:
    """The stated final answer: after `####`, "answer is", "final answer", else the last number of the text."""
    tail = text[-600:]
    marked = _FINAL.findall(tail)
    if marked:
        return number(marked[-1])
    numbers = _ANY_NUMBER.findall(tail)
    return number(numbers[-1]) if numbers else None


def prompt_numbers(prompt: str) -> set[float]:
    return {n for n in (number(x) for x in _ANY_NUMBER.findall(prompt.replace("%", ""))) if n is not None}
