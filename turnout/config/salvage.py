"""What still parses when the schema rejects part of a config. A rejected key falls back to its default and a
rejected entry (a model, a signal, a decision, a list item) is left out, so the references and component
parameters of the rest can still be checked: `turnout validate` then lists every problem of a file in one run
instead of one stage per run (schema, then names, then parameters)."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from turnout.config.issues import ConfigIssue, clean_loc, format_path
from turnout.config.models import Config

# Each pass removes at least one node, so a file with more problems than this is reported without the later
# stages (its schema problems are all listed anyway).
MAX_PASSES = 64
_DROPPED = object()  # stands in for a removed list item, so the indices of the others keep their meaning
_PATH_PART = re.compile(r"\[(\d+)\]|\.?([^.\[]+)")

Loc = tuple[object, ...]


@dataclass
class Partial:
    """The part of a rejected file that parsed, and how to report later stages' issues against the file."""

    config: Config
    index_maps: dict[Loc, list[int]] = field(default_factory=dict)  # list path → file index of each kept item
    dropped: set[tuple[str, str]] = field(default_factory=set)  # (kind, name) of the entries left out

    def report(self, issues: list[ConfigIssue]) -> list[ConfigIssue]:
        """Issues found on the partial config, with the file's list indices; a reference to an entry the schema
        rejected is left out (that entry's problem is already reported)."""
        return [self._renumber(i) for i in issues if i.refers is None or i.refers not in self.dropped]

    def _renumber(self, issue: ConfigIssue) -> ConfigIssue:
        if not self.index_maps or not issue.path:
            return issue
        parts: list[object] = [int(n) if n else name for n, name in _PATH_PART.findall(issue.path)]
        if format_path(parts) != issue.path:  # not a plain YAML path (e.g. one inside a key file)
            return issue
        return replace(issue, path=format_path(_to_file(tuple(parts), self.index_maps)))


def salvage(data: dict[str, Any]) -> Partial | None:
    """The largest part of `data` that validates, found by removing what each schema error points at; None
    when nothing useful is left (no models)."""
    work = copy.deepcopy(data)
    for _ in range(MAX_PASSES):
        maps: dict[Loc, list[int]] = {}
        view = _compact(work, (), maps)
        try:
            config = Config.model_validate(view)
        except ValidationError as exc:
            changed = False
            for err in exc.errors(include_url=False):
                loc = _to_file(tuple(clean_loc(tuple(err["loc"]))), maps)
                changed |= _remove(work, loc[:-1] if err["type"] == "missing" else loc)
            if not changed:
                return None
            continue
        return Partial(config, maps, _dropped(data, work))
    return None


def _compact(node: Any, loc: Loc, maps: dict[Loc, list[int]]) -> Any:
    if isinstance(node, dict):
        return {k: _compact(v, loc + (k,), maps) for k, v in node.items()}
    if isinstance(node, list):
        kept = [i for i, v in enumerate(node) if v is not _DROPPED]
        if len(kept) != len(node):
            maps[loc] = kept
        return [_compact(node[i], loc + (i,), maps) for i in kept]
    return node


def _to_file(loc: Loc, maps: dict[Loc, list[int]]) -> Loc:
    """A path in the compacted document → the same path in the file."""
    out: list[object] = []
    for part in loc:
        kept = maps.get(tuple(out))
        if isinstance(part, int) and kept is not None and 0 <= part < len(kept):
            part = kept[part]
        out.append(part)
    return tuple(out)


def _remove(work: Any, loc: Loc) -> bool:
    """Remove the deepest node of `loc` that exists (a validator may have reshaped what lies below it)."""
    parents: list[tuple[Any, object]] = []
    node = work
    for part in loc:
        present = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node) and node[part] is not _DROPPED)
        if not present:
            break
        parents.append((node, part))
        node = node[part]  # type: ignore[index]
    if not parents:
        return False
    container, key = parents[-1]
    if isinstance(container, list):
        container[key] = _DROPPED  # type: ignore[index]
    else:
        del container[key]
    return True


def _dropped(data: dict[str, Any], work: dict[str, Any]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for section, kind in (("models", "model"), ("signals", "signal")):
        before, after = data.get(section), work.get(section)
        if isinstance(before, dict):
            kept = after if isinstance(after, dict) else {}
            out.update((kind, str(name)) for name in before if name not in kept)
    before, after = data.get("decisions"), work.get("decisions")
    if isinstance(before, list):
        for i, decision in enumerate(before):
            if isinstance(after, list) and i < len(after) and after[i] is not _DROPPED:
                continue
            if isinstance(decision, dict):
                if isinstance(decision.get("name"), str):
                    out.add(("decision", decision["name"]))
                if decision.get("when") is None:
                    out.add(("decision", ""))  # the default decision: "no default decision" would be wrong
    return out
