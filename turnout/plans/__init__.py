"""Plans: how a decision uses several models for one answer (cascade, fanout, multi_round), one file each,
registered by name in `plans`. A decision's `plan:` replaces the single backend call; selection still ranks the
candidates (the explanation shows both)."""

from turnout.plans.base import (
    Plan,
    PlanRun,
    build_plan,
    plan_cost,
    plan_tokens,
    plans,
    register,
    run_plan,
)
from turnout.registry import import_modules

import_modules(__name__, __path__)  # every module here registers its plan

__all__ = ["Plan", "PlanRun", "build_plan", "plan_cost", "plan_tokens", "plans", "register", "run_plan"]
