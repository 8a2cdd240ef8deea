"""Artifacts of the routers named after papers (`routerdc`, `graph`, `mf`) record which method trained them, so
that a directory written by an earlier, different method under the same name is refused with what to retrain
instead of loading arrays the new code would misread."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from turnout.selection.learned import ARTIFACT_FILE


def check_method(directory: str | Path, name: str, method: str, earlier: str) -> None:
    """Raise a ValueError naming the retrain command when `directory`'s router.json was not written by
    `method` (`earlier` says what the older artifacts hold)."""
    directory = Path(directory)
    meta: dict[str, Any] = json.loads((directory / ARTIFACT_FILE).read_text())
    found = meta.get("state", {}).get("method_")
    if meta.get("name") == name and found != method:
        raise ValueError(f"{directory} holds a '{name}' router trained by {found or earlier}, not by {method}; "
                         f"retrain it: turnout train --router {name} --data YOUR_TABLE --out {directory}")
