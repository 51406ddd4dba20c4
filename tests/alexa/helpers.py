"""Shared by the Alexa tests: the ErrorResponse schema, and a fresh handler module."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema

SCHEMA = json.loads(Path(__file__).with_name("error_response.schema.json").read_text())
jsonschema.Draft4Validator.check_schema(SCHEMA)
VALIDATOR = jsonschema.Draft4Validator(SCHEMA)


def assert_error(response: Any, kind: str) -> dict[str, Any]:
    """`response` is a valid ErrorResponse of payload type `kind`; returns its event."""
    errors = sorted(VALIDATOR.iter_errors(response), key=str)
    assert not errors, f"{response} is not a valid ErrorResponse: {errors[0].message}"
    event: dict[str, Any] = response["event"]
    assert event["payload"]["type"] == kind, event["payload"]
    return event


def is_error(response: Any) -> bool:
    return bool(VALIDATOR.is_valid(response))


def fresh_handler() -> ModuleType:
    """The handler module with its kept state (settings, context, connection) reset."""
    import hagate.alexa.lambda_function as module

    return importlib.reload(module)
