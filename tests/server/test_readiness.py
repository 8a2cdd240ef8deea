"""/readyz and /metrics tell a rollout whether the file on disk was accepted (issue 12: /readyz said ready while
the file had been rejected, so a bad config went unnoticed until the next restart failed)."""

from __future__ import annotations

import re
import signal
import time

import httpx
import yaml

from tests.conftest import base_config
from tests.process import turnout_process


def readyz(server) -> httpx.Response:
    return httpx.get(server.url + "/readyz", timeout=10)


def gauge(server, name: str) -> float:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def reload(server, text: str, until) -> dict:
    server.config_path.write_text(text)
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while not until(body := readyz(server).json()):
        assert time.monotonic() < deadline, f"{body}\n{server.log()}"
        time.sleep(0.05)
    return body


def test_a_rejected_file_shows_in_readyz_and_metrics_until_a_good_one_loads(tmp_path, upstream):
    config = base_config(upstream.url)
    with turnout_process(config, tmp_path) as server:
        body = readyz(server).json()
        assert body["config"] == "loaded" and body["generation"] == 1 and "rejected" not in body
        assert gauge(server, "turnout_config_rejected") == 0 and gauge(server, "turnout_config_generation") == 1

        bad = base_config(upstream.url)
        bad["decisions"][-1]["models"] = ["no-such-model"]
        bad["models"]["small"]["modle"] = "typo"
        response_body = reload(server, yaml.safe_dump(bad), lambda b: b["config"] == "rejected")
        response = readyz(server)
        # still 200: the last good config serves (a failing probe on every replica would be an outage)
        assert response.status_code == 200 and response_body["status"] == "ready"
        assert response_body["generation"] == 1
        rejected = response_body["rejected"]
        assert rejected["errors"] == 2
        assert rejected["first"] == "models.small: unknown key 'modle'; did you mean 'model'?"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rejected["at"])
        assert gauge(server, "turnout_config_rejected") == 1 and gauge(server, "turnout_config_generation") == 1
        chat = httpx.post(server.url + "/v1/chat/completions", timeout=30,
                          json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 200 and chat.headers["x-turnout-model"] == "small"

        body = reload(server, "models: [unclosed", lambda b: b["rejected"]["first"] != rejected["first"])
        assert body["rejected"]["errors"] == 1 and "invalid YAML at line 1" in body["rejected"]["first"]

        good = base_config(upstream.url)
        good["decisions"][-1]["models"] = ["strong"]
        body = reload(server, yaml.safe_dump(good), lambda b: b["generation"] == 2)
        assert body["config"] == "loaded" and "rejected" not in body
        assert gauge(server, "turnout_config_rejected") == 0 and gauge(server, "turnout_config_generation") == 2


def test_the_rejection_names_the_field_never_its_value(tmp_path, upstream):
    """/readyz may be open to anyone: the rejection names the field and the problem, never the value."""
    config = base_config(upstream.url)
    with turnout_process(config, tmp_path) as server:
        body = reload(server, "models: {small: {provider: openai, base_url: 'http://x/v1', api_key: [sk-secret]}}",
                      lambda b: b["config"] == "rejected")
        assert "sk-secret" not in str(body) and body["rejected"]["first"].startswith("models.small.api_key:")


def test_a_broken_key_file_is_reported_without_its_lines(tmp_path, upstream):
    """A YAML error's own text quotes the offending line; in a key file that line may hold a key, and /readyz
    may be open to anyone. The problem is named by line and column only, in /readyz and in the log."""
    from turnout.access import digest

    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump([{"name": "a", "key_sha256": digest("sk-a-0123456789")}]))
    config = base_config(upstream.url)
    config["auth"] = {"key_file": str(keys)}
    with turnout_process(config, tmp_path) as server:
        keys.write_text("- {name: b, key: sk-leaked-0123456789\n  oops: [\n")
        body = reload(server, server.config_path.read_text(), lambda b: b["config"] == "rejected")
        assert body["rejected"]["first"].startswith("auth.key_file: ") and "invalid YAML at line" in \
            body["rejected"]["first"]
        assert "sk-leaked" not in str(body) and "sk-leaked" not in server.log()
