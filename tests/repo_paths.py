"""Where the repository and its schema are."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
