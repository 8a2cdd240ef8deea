"""Static analysis of the decision list: unreachable decisions, duplicate conditions and overlaps between
decisions of equal priority. Exhaustive over the truth assignments of the signals a rule set uses, so every
warning is exact, not a guess (above MAX_ATOMS atoms the check is skipped, and says so)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

from turnout.config import AllRule, AnyRule, ConfigIssue, DecisionConfig, NotRule, SignalRule

MAX_ATOMS = 14

Atom = tuple[str, float | None]  # (signal, min_score); None: the signal's own `matched`


def _atoms(rule, out: set[Atom]) -> None:
    if isinstance(rule, SignalRule):
        out.add((rule.signal, rule.min_score))
    elif isinstance(rule, (AllRule, AnyRule)):
        for r in rule.all if isinstance(rule, AllRule) else rule.any:
            _atoms(r, out)
    elif isinstance(rule, NotRule):
        _atoms(rule.not_, out)


def _holds(rule, world: dict[Atom, bool]) -> bool:
    if rule is None:
        return True
    if isinstance(rule, SignalRule):
        return world[(rule.signal, rule.min_score)]
    if isinstance(rule, AllRule):
        return all(_holds(r, world) for r in rule.all)
    if isinstance(rule, AnyRule):
        return any(_holds(r, world) for r in rule.any)
    return not _holds(rule.not_, world)


def _worlds(atoms: list[Atom]) -> Iterator[dict[Atom, bool]]:
    """Every consistent assignment: a score above a higher threshold is also above every lower one."""
    for values in itertools.product((False, True), repeat=len(atoms)):
        world = dict(zip(atoms, values))
        consistent = all(
            not (world[a] and not world[b])
            for a in atoms for b in atoms
            if a[0] == b[0] and a[1] is not None and b[1] is not None and a[1] > b[1]
        )
        if consistent:
            yield world


def analyse(decisions: Sequence[DecisionConfig]) -> list[ConfigIssue]:
    indexed = list(enumerate(decisions))
    atoms: set[Atom] = set()
    for _, d in indexed:
        _atoms(d.when, atoms)
    if len(atoms) > MAX_ATOMS:
        return [ConfigIssue("decisions", f"rule analysis skipped: {len(atoms)} distinct conditions (limit "
                                         f"{MAX_ATOMS})", "warning")]
    worlds = list(_worlds(sorted(atoms, key=lambda a: (a[0], a[1] is None, a[1] or 0))))
    truth = {i: [_holds(d.when, w) for w in worlds] for i, d in indexed}
    order = sorted(indexed, key=lambda item: (-item[1].priority, item[0]))
    issues: list[ConfigIssue] = []
    for rank, (i, d) in enumerate(order):
        path = f"decisions[{i}]"
        if not any(truth[i]):
            issues.append(ConfigIssue(path, f"'{d.name}' can never match: its condition is unsatisfiable", "warning"))
            continue
        earlier = order[:rank]
        if earlier and all(not t or any(truth[j][w] for j, _ in earlier) for w, t in enumerate(truth[i])):
            shadows = [e.name for j, e in earlier if any(truth[i][w] and truth[j][w] for w in range(len(worlds)))]
            issues.append(ConfigIssue(path, f"'{d.name}' is unreachable: whenever it matches, a decision of higher "
                                            f"or equal priority earlier in the file matches first ({', '.join(shadows)})",
                                      "warning"))
    for (i, a), (j, b) in itertools.combinations(indexed, 2):
        if a.when is not None and truth[i] == truth[j]:
            issues.append(ConfigIssue(f"decisions[{j}].when", f"'{b.name}' has the same condition as '{a.name}' "
                                                              f"(decisions[{i}])", "warning"))
        elif a.priority == b.priority and any(x and y for x, y in zip(truth[i], truth[j])):
            issues.append(ConfigIssue(f"decisions[{j}].priority",
                                      f"'{b.name}' and '{a.name}' (decisions[{i}]) have equal priority {a.priority} and "
                                      f"can match together; file order decides ('{a.name}' wins)", "warning"))
    return issues
