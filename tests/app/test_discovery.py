"""The app's announcement to the Supervisor (hagate.app.discovery): what it sends, the token
it makes once and keeps, and that a Supervisor refusing or missing stops nothing and shows no
secret."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from hagate.app.discovery import TOKEN_FILE, announce, integration_token
from hagate.console.access import ConsoleAccess
from hagate.state import StateDir
from tests.app.supervisor import SupervisorDiscovery
from tests.conftest import run_hagate
from tests.net import free_port


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    path = tmp_path / "data"
    made = run_hagate("init", "--hostname", "ha.example.com", "--upstream",
                      "http://127.0.0.1:8123", state=path)  # fmt: skip
    assert made.code == 0, made.err
    return StateDir(path)


@pytest.fixture
def supervisor() -> Iterator[SupervisorDiscovery]:
    s = SupervisorDiscovery()
    try:
        yield s
    finally:
        s.close()


def test_the_token_is_made_once_kept_0600_and_replaced_when_revoked(state: StateDir) -> None:
    first = integration_token(state)
    assert ConsoleAccess(state).token_name(first) == "home-assistant"
    path = state / TOKEN_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert integration_token(state) == first  # every start announces the same one
    ConsoleAccess(state).revoke_token("home-assistant")
    second = integration_token(state)
    assert second != first and ConsoleAccess(state).token_name(second) == "home-assistant-2"
    assert path.read_text() == second


def test_the_announcement(state: StateDir, supervisor: SupervisorDiscovery) -> None:
    said = announce(
        state,
        "supervisor-secret",
        {"HAGATE_APP_SUPERVISOR": supervisor.url, "HAGATE_APP_API_HOST": "local-hagate"},
    )
    assert said == (
        "Home Assistant told about the API at http://local-hagate:8100 (its integration is offered)"
    )
    [(authorization, body)] = supervisor.received
    assert authorization == "Bearer supervisor-secret"
    token = (state / TOKEN_FILE).read_text()
    assert body == {
        "service": "hagate",
        "config": {"url": "http://local-hagate:8100", "token": token},
    }


def test_a_supervisor_refusing_or_missing_is_said_and_stops_nothing(
    state: StateDir, supervisor: SupervisorDiscovery
) -> None:
    supervisor.status = 401
    said = announce(state, "wrong", {"HAGATE_APP_SUPERVISOR": supervisor.url})
    assert said == "Home Assistant not told about the API: the Supervisor answered 401"
    gone = f"http://127.0.0.1:{free_port()}"
    said = announce(state, "wrong", {"HAGATE_APP_SUPERVISOR": gone})
    assert said.startswith("Home Assistant not told about the API: the Supervisor is unreachable")
    token = (state / TOKEN_FILE).read_text()
    assert token not in said and "wrong" not in said
