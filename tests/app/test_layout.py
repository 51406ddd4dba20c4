"""The app's repository layout, checked by the rules the add-on linter applies
(frenck/action-addon-linter: its config.schema.json and build.schema.json, and the checks of
its lint.py, community checks included), read and written here as plain checks, and by what
the Supervisor's store needs to list the app."""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "ha-app" / "hagate"

# config.yaml keys the linter's schema knows, with the defaults it flags when written out.
CONFIG_KEYS: dict[str, Any] = {
    "advanced": False, "apparmor": True, "arch": None, "audio": False, "auth_api": False,
    "auto_uart": False, "backup": "hot", "backup_exclude": None, "backup_pre": None,
    "backup_post": None, "boot": "auto", "breaking_versions": None, "codenotary": None,
    "description": None, "devices": None, "devicetree": False, "discovery": None,
    "docker_api": False, "environment": None, "full_access": False, "gpio": False,
    "hassio_api": False, "hassio_role": "default", "homeassistant": None,
    "homeassistant_api": False, "host_dbus": False, "host_ipc": False, "host_network": False,
    "host_pid": False, "host_uts": False, "image": None, "ingress": False,
    "ingress_entry": None, "ingress_port": 8099, "ingress_stream": False, "init": True,
    "journald": False, "kernel_modules": False, "legacy": False, "machine": None, "map": None,
    "name": None, "options": {}, "panel_admin": True, "panel_icon": "mdi:puzzle",
    "panel_title": None, "ports": None, "ports_description": None, "privileged": None,
    "realtime": False, "schema": {}, "services": None, "slug": None, "stage": "stable",
    "startup": "application", "stdin": False, "timeout": 10, "tmpfs": False, "uart": False,
    "udev": False, "ulimits": {}, "url": None, "usb": False, "version": None, "video": False,
    "watchdog": None, "webui": None,
}  # fmt: skip
REQUIRED = ("arch", "description", "name", "slug", "version")
ARCHES = {"aarch64", "amd64", "armhf", "armv7", "i386"}
DEPRECATED_ARCHES = {"armhf", "armv7", "i386"}
BUILD_KEYS: dict[str, Any] = {
    "args": {}, "build_from": {}, "codenotary": {}, "labels": {}, "squash": False,
}  # fmt: skip
IMAGE = re.compile(r"^([a-zA-Z\-.:\d{}]+/)*?([\-\w{}]+)/([\-\w{}]+)(:[.\-\w{}]+)?$")
# The Supervisor's option types (supervisor/addons/options.py)
SCHEMA_TYPE = re.compile(
    r"^(str|bool|int|float|email|url|port|password|match\(.+\)|list\(.+\)|device(\(.*\))?)"
    r"(\(\d*,\d*\))?\??$"
)


def load(name: str) -> Any:
    return yaml.safe_load((APP / name).read_text())


def test_config_yaml_passes_the_linters_schema_and_checks() -> None:
    config = load("config.yaml")
    assert all(key in config for key in REQUIRED)
    unknown = set(config) - set(CONFIG_KEYS)
    assert not unknown, unknown
    at_default = [
        k for k, v in config.items() if CONFIG_KEYS[k] is not None and v == CONFIG_KEYS[k]
    ]
    assert not at_default, f"written out at their defaults: {at_default}"
    for key in ("name", "slug", "version", "description"):
        assert isinstance(config[key], str) and config[key]
    assert re.fullmatch(r"[a-z0-9_]+", config["slug"])
    assert set(config["arch"]) <= ARCHES and not set(config["arch"]) & DEPRECATED_ARCHES
    for key in ("init", "homeassistant_api", "ingress", "host_network"):
        assert isinstance(config.get(key, False), bool)
    assert not (config.get("ingress") and config.get("webui"))
    for obsolete in ("watchdog", "codenotary", "auto_uart", "advanced"):
        assert obsolete not in config
    assert set(config["ports"]) == set(config["ports_description"])
    for port, host in config["ports"].items():
        assert re.fullmatch(r"\d+/(tcp|udp)", port) and (host is None or 0 < host < 65536)


def test_options_and_schema_agree_as_the_supervisor_reads_them() -> None:
    config = load("config.yaml")
    options, schema = config["options"], config["schema"]
    assert set(options) == set(schema)
    for key, kind in schema.items():
        assert SCHEMA_TYPE.fullmatch(kind), (key, kind)
        value = options[key]
        if kind.startswith("list("):
            assert value in kind[5:].split(")")[0].split("|"), (key, value)
        elif kind.startswith("port"):
            assert isinstance(value, int) and 0 < value < 65536
        elif not kind.endswith("?"):
            assert value is not None


def test_build_yaml_passes_the_linters_schema_and_community_checks() -> None:
    build, config = load("build.yaml"), load("config.yaml")
    assert set(build) <= set(BUILD_KEYS) and "codenotary" not in build and "squash" not in build
    assert set(build["build_from"]) == set(config["arch"])  # architectures match
    for image in build["build_from"].values():
        assert IMAGE.fullmatch(image) and "base-debian" in image
    assert all(isinstance(v, str) for v in build["args"].values())
    dockerfile = (APP / "Dockerfile").read_text()
    assert "ARG BUILD_FROM\nFROM ${BUILD_FROM}" in dockerfile
    for arg in build["args"]:
        assert f"ARG {arg}" in dockerfile


def test_the_translations_cover_every_option_and_port() -> None:
    config, en = load("config.yaml"), load("translations/en.yaml")
    assert set(en["configuration"]) == set(config["schema"])
    for entry in en["configuration"].values():
        assert entry["name"] and entry["description"]
    assert set(en["network"]) == set(config["ports"])


def test_the_repository_and_the_apps_files() -> None:
    repository = yaml.safe_load((ROOT / "repository.yaml").read_text())
    assert repository["name"] and set(repository) <= {"name", "url", "maintainer"}
    for name, size in (("icon.png", (128, 128)), ("logo.png", (250, 100))):
        data = (APP / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24]) == size
    version = load("config.yaml")["version"]
    assert f"## {version}" in (APP / "CHANGELOG.md").read_text()
    docs = (APP / "DOCS.md").read_text()
    assert "trusted_proxies" in docs and "172.30.33.0/24" in docs and "backup" in docs.lower()
    # The Supervisor takes every config.json/yaml/yml under the repository (outside dot
    # folders and rootfs) as an app: there must be exactly one, this one.
    found = [
        p
        for p in ROOT.glob("**/config.*")
        if p.suffix in (".json", ".yaml", ".yml")
        and not any(part.startswith(".") or part in ("rootfs", "build") for part in p.parts)
    ]
    assert found == [APP / "config.yaml"], found
