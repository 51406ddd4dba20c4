"""The integration's files as Home Assistant and HACS read them: the manifest and hacs.json,
the strings every step, error, entity, issue and service needs (and their English copy),
and mypy --strict with each tested Home Assistant installed (its own types)."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.container import podman
from tests.e2e.homeassistant import (
    HA_VERSION,
    MYPY,
    NEWEST,
    ensure_newest_image,
    ensure_tools_venv,
)

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = ROOT / "custom_components" / "hagate"
STAND_IN = ROOT / "tests" / "e2e" / "stand_ins" / "supervisor_discovery"


def source(name: str) -> str:
    return (COMPONENT / name).read_text()


def test_the_manifest_and_hacs_json() -> None:
    manifest = json.loads(source("manifest.json"))
    assert manifest["domain"] == "hagate" == COMPONENT.name
    for key in ("name", "documentation", "issue_tracker", "codeowners", "version"):
        assert key in manifest, key  # what HACS requires of a custom integration
    assert manifest["config_flow"] is True
    assert manifest["requirements"] == []  # it talks to hagate's API with HA's own aiohttp
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert manifest["version"] == pyproject["project"]["version"]
    hacs = json.loads((ROOT / "hacs.json").read_text())
    assert set(hacs) <= {"name", "homeassistant", "render_readme", "content_in_root", "country"}
    assert hacs["homeassistant"] <= HA_VERSION  # the oldest release the tests run it on
    assert [p.name for p in (ROOT / "custom_components").iterdir()] == ["hagate"]


def test_every_string_the_code_uses_is_written() -> None:
    strings = json.loads(source("strings.json"))
    assert json.loads(source("translations/en.json")) == strings
    flow = source("config_flow.py")
    assert set(re.findall(r'step_id="(\w+)"', flow)) == set(strings["config"]["step"])
    assert set(re.findall(r'return "(\w+)", ""', flow)) | {"other_gateway"} == set(
        strings["config"]["error"]
    )
    for reason in re.findall(r"reason=(\w+)", flow):
        assert reason == "error"  # the check's error keys, each also an abort reason
    assert set(strings["config"]["error"]) - {"other_gateway"} <= set(strings["config"]["abort"])
    keys = {
        platform: set(re.findall(r'translation_key(?:\s*=\s*|=)"(\w+)"', source(f"{platform}.py")))
        for platform in ("sensor", "binary_sensor")
    }
    assert keys == {k: set(v) for k, v in strings["entity"].items()}
    assert set(re.findall(r'translation_key="(\w+)"', source("coordinator.py"))) == set(
        strings["issues"]
    )
    services = yaml.safe_load(source("services.yaml"))
    assert set(services) == set(strings["services"])
    for name, spec in services.items():
        assert set(spec["fields"]) == set(strings["services"][name]["fields"]), name


def _mypy_args(root: Path) -> list[str]:
    return [
        "-m", "mypy", "--config-file", "", "--strict", "--no-incremental",
        "--cache-dir", "/dev/null",
        "--python-version", "3.13", "--explicit-package-bases",
        str(root / "custom_components"), str(root / "tests" / "e2e" / "stand_ins"),
    ]  # fmt: skip


@pytest.mark.slow
def test_mypy_strict_with_home_assistant_installed() -> None:
    """Against 2025.4.4 (a venv beside the cached one, seeing its packages) and 2026.2.3 (in
    its container, with the checkout mounted read-only)."""
    python = ensure_tools_venv() / "bin" / "python"
    done = subprocess.run(
        [str(python), *_mypy_args(ROOT)], capture_output=True, text=True, cwd=ROOT, timeout=900
    )
    assert done.returncode == 0, f"HA {HA_VERSION}, mypy {MYPY}:\n{done.stdout[-4000:]}"
    image = ensure_newest_image()
    run = podman(
        "run", "--rm", "-v", f"{ROOT}:/src:ro", "-w", "/src", image,
        "/opt/ha/bin/python", *_mypy_args(Path("/src")),
        check=False, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, f"HA {NEWEST}, mypy {MYPY}:\n{run.stdout[-4000:]}"
