from __future__ import annotations

from hagate.cli import main

main()
