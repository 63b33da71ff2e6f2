"""The lexicon bundle shipped in the package matches the shared lexicons (descriptions aside)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import orjson

import vectors
from atstack.lexicons import bundled_lexicons

_spec = importlib.util.spec_from_file_location(
    "bundle_lexicons", Path(__file__).resolve().parents[1] / "tools" / "bundle_lexicons.py"
)
assert _spec and _spec.loader
bundle_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bundle_tool)


def test_bundle_is_current() -> None:
    shipped = orjson.loads(
        (Path(__file__).resolve().parents[1] / "src/atstack/lexicons/bundle.json").read_bytes()
    )
    fresh = sorted(
        (
            bundle_tool.strip_annotations(orjson.loads(p.read_bytes()))
            for p in vectors.LEXICONS.rglob("*.json")
        ),
        key=lambda d: d["id"],
    )
    assert len(fresh) > 300
    assert shipped == fresh, "run `make lexicons` to rebuild src/atstack/lexicons/bundle.json"


def test_annotations_dropped_but_fields_named_description_kept() -> None:
    lex = bundled_lexicons()
    profile = lex.get("app.bsky.actor.profile")
    assert profile is not None
    main = profile["defs"]["main"]
    assert "description" not in main
    assert main["record"]["properties"]["description"]["type"] == "string"
    lex.validate_record(
        "app.bsky.actor.profile", {"$type": "app.bsky.actor.profile", "description": "hi", "displayName": "A"}
    )
