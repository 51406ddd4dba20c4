"""The Home Assistant app's start: options in, hagate.yaml kept up to date, the role run.

On the first start the state directory (the app's `/data`, which Home Assistant's backups
include) gets hagate's CA and a commented hagate.yaml, as `hagate init` makes them; on every
start the keys the options own are set in it (hagate.app.options) and nothing else is
touched, so rules and settings edited since stay. A changed hostname gets a new server
certificate. The Supervisor's token for Home Assistant's API, when it gives one, is written
to a 0600 file that the alerts read, and the Supervisor is told where hagate's API is, so
that Home Assistant offers the integration (hagate.app.discovery).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hagate import config
from hagate.app.discovery import announce
from hagate.app.options import (
    SUPERVISOR_CORE,
    SUPERVISOR_TOKEN_FILE,
    UPSTREAM,
    AppOptions,
    apply_options,
    parse_options,
)
from hagate.configedit import replace_checked
from hagate.errors import HagateError
from hagate.pki.authority import Authority
from hagate.state import CA_CERT, StateDir, atomic_write


@dataclass(frozen=True)
class Prepared:
    options: AppOptions
    said: list[str]  # what the start did, one line each


def read_options(path: Path) -> AppOptions:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HagateError(f"no app options at {path}: is this running as the app?") from None
    except (OSError, ValueError) as e:
        raise HagateError(f"cannot read the app's options {path}: {e}") from None
    return parse_options(raw)


def prepare(
    state: StateDir,
    options: AppOptions,
    supervisor_token: str | None,
    environ: Mapping[str, str] | None = None,
) -> Prepared:
    """Make or update the state directory for `options`; what was done, in words.
    `environ` may move Home Assistant and the Supervisor's proxy elsewhere: the tests run
    both on loopback (HAGATE_APP_UPSTREAM, HAGATE_APP_SUPERVISOR_CORE)."""
    environ = {} if environ is None else environ
    upstream = environ.get("HAGATE_APP_UPSTREAM", UPSTREAM)
    core = environ.get("HAGATE_APP_SUPERVISOR_CORE", SUPERVISOR_CORE)
    said: list[str] = []
    if supervisor_token:
        atomic_write(state / SUPERVISOR_TOKEN_FILE, supervisor_token.encode(), mode=0o600)
    path = state.config_path
    if not (state / CA_CERT).exists():
        Authority.initialise(state, options.hostname)
        text = config.render_template(options.hostname, upstream, options.listen)
        atomic_write(path, text.encode(), mode=0o600)
        said.append(f"first start: hagate's CA and {path} made for {options.hostname}")
    before = config.load_config(path)
    text = path.read_text(encoding="utf-8")
    new = apply_options(text, options, core if supervisor_token else None, upstream)
    if new != text:
        backup = replace_checked(path, new)
        said.append(f"{path}: the app's options applied (the old file is {backup.name})")
    if before.hostname != options.hostname:
        authority = Authority(state)
        with state.lock():
            authority.write_server_cert(authority.ca(), options.hostname)
        said.append(f"the hostname is now {options.hostname}: a new server certificate")
    return Prepared(options, said)


def start(
    state: StateDir,
    options: AppOptions,
    supervisor_token: str | None,
    environ: Mapping[str, str] | None = None,
) -> Prepared:
    """`prepare`, then (under the Supervisor) tell Home Assistant where the API is."""
    prepared = prepare(state, options, supervisor_token, environ)
    if supervisor_token:
        prepared.said.append(announce(state, supervisor_token, environ))
    return prepared
