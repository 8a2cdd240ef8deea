"""deploy/ checked offline: `kubectl kustomize` renders every overlay, each rendered object round-trips through
the `kubernetes` client's models (a required field missing fails; a field the schema does not have is dropped by
the model, and the round trip shows it), and the pieces agree with each other (probes, grace periods, selectors,
the config turnout loads). The Dockerfile, the compose file and what it mounts are parsed and checked too."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from turnout.config import parse_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
OVERLAYS = ["base", "overlays/dev", "overlays/prod"]
ENV = {"TURNOUT_REDIS_URL": "redis://127.0.0.1:6379/0", "TURNOUT_ADMIN_KEY": "sk-a", "TURNOUT_TEAM_KEY": "sk-t"}


def render(overlay: str) -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    out = subprocess.run(["kubectl", "kustomize", str(DEPLOY / "k8s" / overlay)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def model_name(obj: dict[str, Any]) -> str:
    version = obj["apiVersion"].split("/")[-1]
    return version[0].upper() + version[1:] + obj["kind"]


def strip_empty(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: strip_empty(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [strip_empty(v) for v in node]
    return node


def validate(obj: dict[str, Any]) -> Any:
    """The object as the client's model (required fields checked), and no field lost on the way back."""
    from kubernetes.client import ApiClient

    client = ApiClient()
    model = client.deserialize(json.dumps(obj), model_name(obj), "application/json")
    back = strip_empty(client.sanitize_for_serialization(model))
    assert back == strip_empty(json.loads(json.dumps(obj))), f"{obj['kind']}/{obj['metadata']['name']}: " \
        "a field the Kubernetes schema does not know was dropped"
    return model


def by_kind(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} rendered"
    return matches[0]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_validates_against_the_kubernetes_models(overlay, monkeypatch):
    objects = render(overlay)
    for obj in objects:
        validate(obj)
    deployment = by_kind(objects, "Deployment", "turnout")
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for kind in ("Service", "PodDisruptionBudget"):
        obj = by_kind(objects, kind, "turnout")
        selector = obj["spec"]["selector"]
        assert (selector.get("matchLabels") or selector).items() <= labels.items(), kind
    hpa = by_kind(objects, "HorizontalPodAutoscaler", "turnout")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "turnout"}
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu" and hpa["spec"]["minReplicas"] >= 1

    (container,) = pod["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    config_mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert "subPath" not in config_mount  # a subPath mount never sees a ConfigMap update: no hot reload
    config_map = by_kind(objects, "ConfigMap", pod["spec"]["volumes"][0]["configMap"]["name"])
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    config = parse_config(yaml.safe_load(config_map["data"]["config.yaml"]))
    assert config.state.store == "redis" and config.server.host == "0.0.0.0"
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # the kubelet kills the pod after the grace period: preStop and the drain of streams must fit in it
    assert pod["spec"]["terminationGracePeriodSeconds"] > int(pre_stop[1]) + config.server.shutdown_grace_s

    secrets = [o for o in objects if o["kind"] == "Secret"]
    if overlay.endswith("prod"):
        assert not secrets  # keys come from the cluster's secret store, never from this repository
        assert not [o for o in objects if o["metadata"]["name"] == "turnout-redis"]
        assert by_kind(objects, "PodDisruptionBudget", "turnout")["spec"]["minAvailable"] == 2
        assert container["env"][0]["value"].startswith("redis+sentinel://")
    else:
        assert [s["metadata"]["name"] for s in secrets] == [container["envFrom"][0]["secretRef"]["name"]]
        by_kind(objects, "Service", "turnout-redis")
        assert container["env"][0]["value"] == "redis://turnout-redis:6379/0"


def test_the_shipped_configs_are_one_and_load():
    assert (DEPLOY / "config.yaml").read_text() == (DEPLOY / "k8s/base/config.yaml").read_text()


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in (raw.strip() for raw in joined.splitlines()) if line and not line.startswith("#")]


def test_the_dockerfile_is_multi_stage_non_root_and_checks_healthz():
    steps = dockerfile_instructions((DEPLOY / "Dockerfile").read_text())
    froms = [arg for op, arg in steps if op == "FROM"]
    assert len(froms) >= 2 and all(" AS " in f.upper() for f in froms)
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM"):]
    assert any(op == "COPY" and arg.startswith("--from=") for op, arg in final)
    users = [arg for op, arg in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    (health,) = [arg for op, arg in final if op == "HEALTHCHECK"]
    assert "/healthz" in health and "CMD" in health
    entry = json.loads(next(arg for op, arg in final if op == "ENTRYPOINT"))
    assert entry[:2] == ["turnout", "serve"]
    for op, arg in steps:  # every JSON-form argument is valid JSON
        if op in ("CMD", "ENTRYPOINT") and arg.startswith("["):
            json.loads(arg)


def test_compose_runs_three_replicas_behind_a_balancer_with_redis_and_prometheus():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    replicas = sorted(name for name in services if name.startswith("turnout-"))
    assert replicas == ["turnout-1", "turnout-2", "turnout-3"]
    grace = parse_config_with_env().server.shutdown_grace_s
    for name in replicas:
        service = services[name]
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["environment"]["TURNOUT_REDIS_URL"].startswith("redis://redis:")
        assert float(service["stop_grace_period"].rstrip("s")) > grace
    assert services["redis"]["healthcheck"] and services["lb"]["ports"] and services["prometheus"]["ports"]
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert sorted(t.split(":")[0] for t in targets) == replicas
    haproxy = (DEPLOY / "haproxy.cfg").read_text()
    assert sorted(re.findall(r"^\s*server (\S+) ", haproxy, re.MULTILINE)) == replicas
    assert "balance roundrobin" in haproxy and "GET /readyz" in haproxy
    if shutil.which("haproxy"):
        out = subprocess.run(["haproxy", "-c", "-f", str(DEPLOY / "haproxy.cfg")], capture_output=True, text=True,
                             check=False)
        assert out.returncode == 0, out.stdout + out.stderr
    if shutil.which("promtool"):
        out = subprocess.run(["promtool", "check", "config", str(DEPLOY / "prometheus.yml")], capture_output=True,
                             text=True, check=False)
        assert out.returncode == 0, out.stdout + out.stderr


def parse_config_with_env():
    import os

    saved = {k: os.environ.get(k) for k in ENV}
    os.environ.update(ENV)
    try:
        return parse_config(yaml.safe_load((DEPLOY / "config.yaml").read_text()))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v
