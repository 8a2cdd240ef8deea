"""A plan's config: every mistake is reported with its YAML path, by Router.build and by `turnout validate`."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.plans.helpers import plan_config
from turnout.config import ConfigError, parse_config
from turnout.pipeline import Router

P = "decisions[0].plan"


def issues(plan: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        Router.build(parse_config(plan_config("http://127.0.0.1:9", plan)))
    return [str(i) for i in caught.value.issues]


@pytest.mark.parametrize("plan, expected", [
    ({"name": "cascad"}, f"{P}.name: unknown plan 'cascad'; did you mean 'cascade'?"),
    ({"name": "cascade", "params": {"max_attempts": 0}}, f"{P}.params.max_attempts: Input should be greater"),
    ({"name": "cascade", "params": {"on_fail": "shrug"}}, f"{P}.params.on_fail: Input should be 'best'"),
    ({"name": "cascade", "params": {"models": ["cheap", "gpt-9"]}}, f"{P}.params.models[1]: unknown model 'gpt-9'"),
    ({"name": "cascade", "params": {"judge": {"name": "vibes"}}}, f"{P}.params.judge.name: unknown judge 'vibes'"),
    ({"name": "cascade", "params": {"judge": {"name": "format", "params": {"threshold": "high"}}}},
     f"{P}.params.judge.params.threshold: Input should be a valid number"),
    ({"name": "cascade", "params": {"judge": {"name": "verifier", "params": {"model": "oracle"}}}},
     f"{P}.params.judge.params.model: unknown model 'oracle'"),
    ({"name": "cascade", "params": {"atempts": 2}}, f"{P}.params: unknown key 'atempts'"),
    ({"name": "cascade", "params": {"judge": {"name": "ensemble", "params": {"judges": [
        {"name": "arithmetic"}, {"name": "verifier", "params": {"model": "oracle"}}]}}}},
     f"{P}.params.judge.params.judges[1].params.model: unknown model 'oracle'"),
    ({"name": "cascade", "params": {"judge": {"name": "ensemble", "params": {"judges": [{"name": "vibes"}]}}}},
     f"{P}.params.judge.params.judges[0].name: unknown judge 'vibes'"),
    ({"name": "cascade", "params": {"judge": {"name": "ensemble", "params": {"rule": "mean", "weights": [1, 2],
                                                                            "judges": [{"name": "format"}]}}}},
     f"{P}.params.judge.params.weights: 2 weights for 1 judges"),
    ({"name": "cascade", "params": {"judge": {"name": "arithmetic", "params": {"rel_tol": 2}}}},
     f"{P}.params.judge.params.rel_tol: Input should be less than or equal to 0.5"),
    ({"name": "fanout", "params": {"mode": "judge_pick"}}, f"{P}.params.judge_model: required by mode 'judge_pick'"),
    ({"name": "fanout", "params": {"mode": "fuse", "fuse_model": "nobody"}},
     f"{P}.params.fuse_model: unknown model 'nobody'"),
    ({"name": "fanout", "params": {"k": 5}}, f"{P}.params.k: 5 is more than the plan's 3 models"),
    ({"name": "multi_round", "params": {"coordinator": "boss"}}, f"{P}.params.coordinator: unknown model 'boss'"),
    ({"name": "multi_round", "params": {"max_rounds": 0}}, f"{P}.params.max_rounds: Input should be greater"),
])
def test_errors_name_the_field(plan, expected):
    found = issues(plan)
    assert any(i.startswith(expected) for i in found), found


def test_a_plan_that_is_not_a_mapping_is_a_schema_error():
    with pytest.raises(ConfigError) as caught:
        parse_config(plan_config("http://127.0.0.1:9", "cascade"))  # type: ignore[arg-type]
    assert any(i.path.startswith(P) for i in caught.value.issues)


def test_turnout_validate_lists_plan_errors(tmp_path):
    config = plan_config("http://127.0.0.1:9", {"name": "cascade", "params": {"judge": {"name": "formt"}}})
    path = tmp_path / "turnout.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "turnout.cli", "validate", str(path)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert f"{P}.params.judge.name" in result.stdout + result.stderr


def test_a_valid_plan_builds_and_is_described():
    router = Router.build(parse_config(plan_config("http://127.0.0.1:9", {"name": "fanout", "params": {
        "mode": "judge_pick", "judge_model": "judge"}})))
    plan = router.decisions["planned"].plan
    assert plan.describe() == {"name": "fanout", "models": ["strong", "mid", "cheap"], "mode": "judge_pick",
                               "judge_model": "judge"}
    assert set(plan.referenced_models()) == {"strong", "mid", "cheap", "judge"}
