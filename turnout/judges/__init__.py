"""Judges: how an answer is scored (one file each, registered by name in `judges`). Plans (cascade, fanout)
use them to accept, escalate or pick; plugins may use them too."""

from turnout.judges.base import Judge, JudgeEnv, Verdict, build_judge, judges, register
from turnout.registry import import_modules

import_modules(__name__, __path__)  # every module here registers its judges

__all__ = ["Judge", "JudgeEnv", "Verdict", "build_judge", "judges", "register"]
