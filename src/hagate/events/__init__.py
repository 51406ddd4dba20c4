"""The event log: one row per request decision and per refused connection, in SQLite."""
