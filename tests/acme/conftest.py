from __future__ import annotations

import pytest

from tests.acme import pebble


@pytest.fixture(autouse=True)
def _pebble_installed() -> None:
    # `make test` installs Debian's pebble; a missing one is a broken setup, not a skip.
    assert pebble.available(), "pebble is not installed: run make setup"
