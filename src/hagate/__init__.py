"""hagate: secure remote access and Alexa for Home Assistant, without an open port at home."""

from __future__ import annotations

__version__ = "0.1.0"
