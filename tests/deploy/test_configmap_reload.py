"""A ConfigMap volume is updated by a symlink swap, never by writing the file: `config.yaml` links to
`..data/config.yaml`, `..data` links to a timestamped folder, and the kubelet writes a new folder, renames a new
`..data` link over the old one and deletes the old folder. A real `turnout serve --watch` on such a layout
reloads at each swap (twice: the second swap is seen by the watch set up after the first)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import yaml

from tests.conftest import base_config
from tests.process import start_turnout
from turnout.testing import free_port


def swap(volume: Path, stamp: str, config: dict) -> None:
    """What the kubelet's atomic writer does."""
    new = volume / f"..{stamp}"
    new.mkdir()
    (new / "config.yaml").write_text(yaml.safe_dump(config))
    old = os.readlink(volume / "..data") if (volume / "..data").exists() else None
    os.symlink(new.name, volume / "..data_tmp")
    os.rename(volume / "..data_tmp", volume / "..data")
    if not (volume / "config.yaml").is_symlink():
        os.symlink("..data/config.yaml", volume / "config.yaml")
    if old is not None:
        shutil.rmtree(volume / old)


def readyz(port: int) -> dict:
    return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).json()


def test_a_configmap_symlink_swap_is_reloaded(upstream, tmp_path):
    volume = tmp_path / "etc-turnout"
    volume.mkdir()
    config = base_config(upstream.url)
    swap(volume, "2026_12_01_10_00_00.000000001", config)
    port = free_port()
    proc = start_turnout(volume / "config.yaml", port, watch=True)
    try:
        assert readyz(port)["generation"] == 1
        for generation, stamp in ((2, "2026_12_01_10_01_00.000000002"), (3, "2026_12_01_10_02_00.000000003")):
            config["models"][f"extra{generation}"] = dict(config["models"]["small"])
            swap(volume, stamp, config)
            deadline = time.monotonic() + 10
            while f"extra{generation}" not in readyz(port)["models"]:
                assert time.monotonic() < deadline, f"swap {generation - 1} not reloaded"
                time.sleep(0.1)
            time.sleep(0.5)
            assert readyz(port)["generation"] == generation  # one reload a swap, not two
    finally:
        proc.terminate()
        proc.wait(15)
