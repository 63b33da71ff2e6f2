"""Locate and read the official interop vectors in place (``../shared/atproto`` beside the checkout).

Every loader fails loudly when a file is missing or yields no cases: a vector file that silently produced
nothing would make a test pass without checking anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ATSTACK_SHARED", REPO_ROOT.parent / "shared")).resolve()
ATPROTO = SHARED / "atproto"
INTEROP = ATPROTO / "interop-tests"
EXTRA = ATPROTO / "extra-fixtures"
LEXICONS = ATPROTO / "lexicons"


def vector_path(*parts: str, base: Path = INTEROP) -> Path:
    path = base.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"interop vector missing: {path}")
    return path


def vector_lines(*parts: str) -> list[str]:
    """Cases of a syntax ``.txt`` file: skip blank and ``#`` lines, never strip whitespace inside a case."""
    text = vector_path(*parts).read_text(encoding="utf-8")
    cases = [line for line in text.split("\n") if line and not line.startswith("#")]
    if not cases:
        raise AssertionError(f"vector file {parts} yielded zero cases")
    return cases


def vector_json(*parts: str, base: Path = INTEROP) -> Any:
    data = json.loads(vector_path(*parts, base=base).read_text(encoding="utf-8"))
    if not data:
        raise AssertionError(f"vector file {parts} yielded zero cases")
    return data
