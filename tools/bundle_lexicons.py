"""Build ``src/atstack/lexicons/bundle.json``: the protocol's lexicon schemas, shipped with the package.

An installed PDS must validate records without a checkout of the lexicon repository beside it. The bundle
keeps the schema facts only — ids, types, constraints, refs, record keys, errors — and drops the
human-readable ``description`` annotations. Run ``make lexicons`` after the shared lexicons change.

Usage: python tools/bundle_lexicons.py SOURCE_DIR... OUT_FILE
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson


def strip_annotations(node: Any, *, in_properties: bool = False) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            # Inside a `properties` map the keys are field names (a field may be called "description").
            if not in_properties and key == "description" and isinstance(value, str):
                continue
            out[key] = strip_annotations(value, in_properties=(key == "properties" and not in_properties))
        return out
    if isinstance(node, list):
        return [strip_annotations(v) for v in node]
    return node


def main(argv: list[str]) -> None:
    *sources, out = argv
    docs = []
    for source in sources:
        for path in sorted(Path(source).rglob("*.json")):
            doc = orjson.loads(path.read_bytes())
            if isinstance(doc, dict) and doc.get("lexicon") == 1:
                docs.append(strip_annotations(doc))
    docs.sort(key=lambda d: d["id"])
    Path(out).write_bytes(orjson.dumps(docs) + b"\n")
    print(f"{len(docs)} lexicons → {out} ({Path(out).stat().st_size:,} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
