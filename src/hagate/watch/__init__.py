"""Watching the setup: the audit, metrics on the admin listener, and alerts into Home Assistant."""
