"""Edits to hagate.yaml that keep the user's comments and layout.

Rules:
  1. The file is edited as a round-trip YAML document (ruamel.yaml): comments, key order and
     the layout of everything not touched stay as they were.
  2. The result is checked as the gateway would load it (config and rules) before anything is
     written; a result that does not check changes nothing.
  3. The old file is kept as a backup, and the new one replaces it in one step, with its mode.
"""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from hagate import config
from hagate.errors import HagateError
from hagate.state import atomic_write

CERT_FIELD = "cf.tls_client_auth.cert_verified"


def yaml_editor() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096  # never wrap an expression over lines of its own
    y.indent(mapping=2, sequence=4, offset=2)  # the layout `hagate init` writes
    return y


def certificate_rule_index(rules: list[Any]) -> int:
    """Where a rule that must come before the certificate rule goes: above the first block
    rule that reads the certificate, or first when there is none."""
    for i, rule in enumerate(rules):
        if (
            isinstance(rule, dict)
            and rule.get("action") == "block"
            and CERT_FIELD in str(rule.get("expression", ""))
        ):
            return i
    return 0


def insert_rule(path: Path, rule: dict[str, str]) -> Path:
    """Insert `rule` above the certificate rule in the config at `path`; returns the backup."""
    return replace_checked(path, with_rule_inserted(path, rule))


def with_rule_inserted(path: Path, rule: dict[str, str]) -> str:
    """The config at `path` as text, with `rule` inserted above the certificate rule."""
    text = path.read_text(encoding="utf-8")
    y = yaml_editor()
    doc = y.load(text)
    if not isinstance(doc, CommentedMap):
        raise HagateError(f"{path} is not a YAML mapping; fix it first (hagate rules check)")
    rules = doc.get("rules")
    if rules is None:
        rules = doc["rules"] = CommentedSeq()
    if not isinstance(rules, CommentedSeq):
        raise HagateError(f"`rules:` in {path} is not a list")
    if any(isinstance(r, dict) and r.get("description") == rule["description"] for r in rules):
        raise HagateError(f"{path} already has the rule {rule['description']!r}")
    entry = CommentedMap(rule)
    rules.insert(certificate_rule_index(list(rules)), entry)
    out = io.StringIO()
    y.dump(doc, out)
    return out.getvalue()


def text_diff(path: Path, new_text: str) -> str:
    """A unified diff of the file at `path` and `new_text` (what a change would write)."""
    import difflib

    old = path.read_text(encoding="utf-8").splitlines(keepends=True)
    new = new_text.splitlines(keepends=True)
    return "".join(difflib.unified_diff(old, new, path.name, path.name + " (new)"))


def replace_checked(path: Path, new_text: str) -> Path:
    """Check `new_text` as the gateway would, back up `path`, then write it in one step."""
    from hagate.rules.ruleset import ruleset_from_config

    try:
        cfg = config.parse_config(new_text, str(path))
        ruleset_from_config(cfg)
    except HagateError as e:
        raise HagateError(f"the change would not check, so nothing was written: {e}") from None
    backup = path.with_name(f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak")
    shutil.copy2(path, backup)
    mode = os.stat(path).st_mode & 0o777
    atomic_write(path, new_text.encode("utf-8"), mode=mode)
    return backup


def insert_relay_rule(path: Path, rule: dict[str, str]) -> Path | None:
    """Insert `rule` first in a relay's rules file (a YAML list; created when missing),
    checked as `hagate relay run --rules` loads it; returns the backup, if there was a file."""
    from hagate.tunnel.admission import load_admission

    y = yaml_editor()
    if path.exists():
        doc = y.load(path.read_text(encoding="utf-8"))
        if doc is None:
            doc = CommentedSeq()
        if not isinstance(doc, CommentedSeq):
            raise HagateError(f"{path} is not a YAML list of rules")
    else:
        doc = CommentedSeq()
    for i, r in enumerate(doc):
        if isinstance(r, dict) and r.get("description") == rule["description"]:
            doc[i] = CommentedMap(rule)  # the same suggestion, with today's evidence
            break
    else:
        doc.insert(0, CommentedMap(rule))
    out = io.StringIO()
    y.dump(doc, out)
    text = out.getvalue()
    check = path.with_name(f".{path.name}.check")
    try:
        check.write_text(text, encoding="utf-8")
        load_admission(check, None, None)
    except HagateError as e:
        raise HagateError(f"the change would not check, so nothing was written: {e}") from None
    finally:
        check.unlink(missing_ok=True)
    backup = None
    if path.exists():
        backup = path.with_name(f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak")
        shutil.copy2(path, backup)
    atomic_write(path, text.encode("utf-8"))
    return backup


def set_geoip_paths(path: Path, paths: dict[str, str]) -> Path | None:
    """Point `geoip.asn_db` / `geoip.country_db` at `paths` (keys "asn", "country") where they
    are not set yet; returns the backup when the file changed."""
    y = yaml_editor()
    doc = y.load(path.read_text(encoding="utf-8"))
    if not isinstance(doc, CommentedMap):
        raise HagateError(f"{path} is not a YAML mapping; fix it first (hagate rules check)")
    geoip = doc.get("geoip")
    if geoip is None:
        geoip = doc["geoip"] = CommentedMap()
    changed = False
    for kind, value in paths.items():
        key = f"{kind}_db"
        if not geoip.get(key):
            geoip[key] = value
            changed = True
    if not changed:
        return None
    out = io.StringIO()
    y.dump(doc, out)
    return replace_checked(path, out.getvalue())
