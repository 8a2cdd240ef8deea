"""The peers turnout is measured against, each installed on first use in its own virtualenv (or npm folder)
under bench-out/peers and started in front of the same loopback mock upstream:
- LiteLLM's proxy (`pip install 'litellm[proxy]'`), `--num_workers N`, no database;
- RouteLLM's OpenAI server (`pip install torch==2.13.0 'routellm[serve]'`) with its `random` router, one process:
  its learned routers embed prompts through OpenAI's API, which is off limits here (no network), and its
  `--workers` children exit at start (the module parses its command line at import);
- Portkey's gateway (`npm install @portkey-ai/gateway`, Node), one process, the mock as its custom host.
Every start returns (process, chat URL, model name, headers) or raises RuntimeError saying why."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _load import start

MASTER_KEY = "sk-bench-master-key-0123456789"
UPSTREAM_KEY = "sk-upstream"

# Portkey's server listens on every interface and has no option for the host: this preload pins Node's
# listen() to loopback, as every server these benchmarks start must be.
LOOPBACK_ONLY_JS = """const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number") {
    return listen.call(this, args[0], "127.0.0.1", ...args.slice(1).filter((a) => typeof a === "function"));
  }
  if (args[0] && typeof args[0] === "object") args[0] = { ...args[0], host: "127.0.0.1" };
  return listen.apply(this, args);
};
"""


def python_venv(path: Path, packages: list[list[str]], log) -> Path:
    """The venv's python, installing `packages` (one pip call per group) the first time."""
    python = path / "bin" / "python"
    if python.exists():
        return python
    log(f"installing into {path}: {' then '.join(' '.join(p) for p in packages)} (minutes, once)")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        for group in packages:
            subprocess.run([str(python), "-m", "pip", "install", "-q", *group], check=True)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(path, ignore_errors=True)  # a half-made venv would pass for an installed one next time
        raise RuntimeError(f"could not install into {path}: {exc}") from exc
    return python


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}


def start_litellm(venvs: Path, upstream: str, port: int, workers: int, tmp: Path, log):
    python = python_venv(venvs / "litellm", [["litellm[proxy]"]], log)
    config = {"model_list": [{"model_name": "small", "litellm_params": {
                  "model": "openai/mock-small", "api_base": f"{upstream}/v1", "api_key": UPSTREAM_KEY}}],
              "litellm_settings": {"drop_params": True, "telemetry": False, "set_verbose": False}}
    path = tmp / "litellm.yaml"
    path.write_text(yaml.safe_dump(config))
    env = _env(LITELLM_MASTER_KEY=MASTER_KEY, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR")
    proc = start([str(python.parent / "litellm"), "--config", str(path), "--host", "127.0.0.1", "--port",
                  str(port), "--num_workers", str(workers), "--timeout_worker_healthcheck", "120"],
                 f"http://127.0.0.1:{port}/health/readiness",
                 tmp / "litellm.log", timeout=240, env=env)
    return proc, "small", {"authorization": f"Bearer {MASTER_KEY}"}


def start_routellm(venvs: Path, upstream: str, port: int, tmp: Path, log):
    python = python_venv(venvs / "routellm", [["torch==2.13.0"], ["routellm[serve]"]], log)
    # its server forwards through LiteLLM's SDK to --base-url
    env = _env(OPENAI_API_KEY=UPSTREAM_KEY, LITELLM_LOCAL_MODEL_COST_MAP="True")
    proc = start([str(python), "-m", "routellm.openai_server", "--routers", "random", "--strong-model",
                  "openai/mock-strong", "--weak-model", "openai/mock-small", "--port", str(port), "--base-url",
                  f"{upstream}/v1", "--api-key", UPSTREAM_KEY],
                 f"http://127.0.0.1:{port}/v1/models", tmp / "routellm.log", timeout=300, env=env)
    return proc, "router-random-0.5", {}


def start_portkey(venvs: Path, upstream: str, port: int, tmp: Path, log):
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        raise RuntimeError("node and npm are not installed (apt-get install nodejs npm)")
    folder = venvs / "portkey"
    entry = folder / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if not entry.exists():
        log(f"installing @portkey-ai/gateway into {folder} (npm)")
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(folder),
                               "@portkey-ai/gateway"], check=False, capture_output=True, text=True)
        if done.returncode != 0 or not entry.exists():
            raise RuntimeError(f"npm install @portkey-ai/gateway failed: {done.stderr[-500:]}")
    preload = tmp / "loopback-only.cjs"
    preload.write_text(LOOPBACK_ONLY_JS)
    env = _env(TRUSTED_CUSTOM_HOSTS="127.0.0.1,localhost", NODE_ENV="production")
    proc = start([node, "--require", str(preload), str(entry), f"--port={port}", "--headless"],
                 f"http://127.0.0.1:{port}/", tmp / "portkey.log", timeout=60, env=env)
    headers = {"authorization": f"Bearer {UPSTREAM_KEY}", "x-portkey-provider": "openai",
               "x-portkey-custom-host": f"{upstream}/v1"}
    return proc, "mock-small", headers
