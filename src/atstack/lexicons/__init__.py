"""Lexicon schemas shipped with atstack (``bundle.json``, built by ``tools/bundle_lexicons.py``)."""

from __future__ import annotations

from importlib.resources import files

import orjson

from atstack.core.lexicon import Lexicons

__all__ = ["bundled_lexicons"]


def bundled_lexicons() -> Lexicons:
    """The com.atproto, app.bsky and chat.bsky lexicons, loaded and validated."""
    return Lexicons(orjson.loads(files(__name__).joinpath("bundle.json").read_bytes()))
