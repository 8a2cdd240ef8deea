"""The Judge interface: a judge scores one answer to one request, 0..1, and says whether it passes.

`request` is the internal chat body (OpenAI chat completions), `answer` an internal chat completion. A judge that
needs a model (verifier) asks it through `JudgeEnv.ask`, which goes through the Dispatcher like any call, so its
cost is counted; a judge that needs several answers (consistency) gets them from `JudgeEnv.samples`."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from turnout.config import ConfigError, ConfigIssue
from turnout.params import Params, validate_params
from turnout.registry import Registry


@dataclass(frozen=True)
class Verdict:
    score: float  # 0..1, higher is better
    passed: bool
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"score": round(self.score, 4), "passed": self.passed, **self.detail}


class JudgeEnv(Protocol):
    """What a judge may use besides the request and the answer (provided by the plan that runs it)."""

    async def ask(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        """A chat completion from a configured model (through the Dispatcher; its cost is counted)."""
        ...

    async def samples(self, k: int) -> list[dict[str, Any]]:
        """k further answers (chat completions) to the same request from the model that wrote the answer."""
        ...


class JudgeParams(Params):
    threshold: float | None = None  # None: the judge's default_threshold


class Judge(abc.ABC):
    name: ClassVar[str]
    Params: ClassVar[type[Params]] = JudgeParams
    default_threshold: ClassVar[float] = 0.5
    #: whether the plan must ask the upstream for logprobs when this judge is used
    needs_logprobs: ClassVar[bool] = False

    def __init__(self, params: Params) -> None:
        self.params = params
        given = getattr(params, "threshold", None)
        self.threshold: float = self.default_threshold if given is None else float(given)

    @classmethod
    def from_config(cls, params: dict[str, Any], path: str) -> Judge:
        checked = validate_params(cls.Params, params, path)
        try:
            return cls(checked)
        except (ValueError, OSError) as exc:  # e.g. a model artifact that is missing
            raise ConfigError([ConfigIssue(path, str(exc))]) from None

    @abc.abstractmethod
    async def judge(self, request: dict[str, Any], answer: dict[str, Any], env: JudgeEnv) -> Verdict:
        """Score the answer; CPU-heavy work goes through turnout.signals.base.off_loop."""

    def referenced_models(self) -> list[str]:
        """Model names this judge calls (checked against the config's models)."""
        return []

    def verdict(self, score: float, **detail: Any) -> Verdict:
        score = min(1.0, max(0.0, float(score)))
        return Verdict(score=score, passed=score >= self.threshold, detail=detail)


judges: Registry[Judge] = Registry("judge", attr="name")
register = judges.register


def build_judge(spec: dict[str, Any], path: str) -> Judge:
    """Build a judge from `{name: ..., params: {...}}`; errors name `path.name` / `path.params.X`."""
    if not isinstance(spec, dict):
        raise ConfigError([ConfigIssue(path, "must be a mapping {name: ..., params: {...}}")])
    extra = set(spec) - {"name", "params"}
    if extra:
        raise ConfigError([ConfigIssue(path, f"unknown key '{min(extra)}' (valid: name, params)")])
    name = spec.get("name")
    if not isinstance(name, str):
        raise ConfigError([ConfigIssue(f"{path}.name", "required but missing")])
    try:
        cls = judges.get(name)
    except KeyError as exc:
        raise ConfigError([ConfigIssue(f"{path}.name", str(exc.args[0]))]) from None
    return cls.from_config(spec.get("params") or {}, f"{path}.params")


# helpers the judges share ------------------------------------------------------------------------------------

def answer_message(answer: dict[str, Any]) -> dict[str, Any]:
    choices = answer.get("choices") or [{}]
    return (choices[0] or {}).get("message") or {}


def answer_text(answer: dict[str, Any]) -> str:
    content = answer_message(answer).get("content")
    if isinstance(content, list):  # content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def question_text(request: dict[str, Any]) -> str:
    """The last user turn's text: what the answer answers."""
    for message in reversed(request.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""
