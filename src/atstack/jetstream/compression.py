"""The Jetstream v1 zstd scheme: every message is one zstd frame made with the fixed v1 dictionary.

Spec: checklist §13 ("zstd"): opt in with ``compress=true`` or the ``Socket-Encoding: zstd`` header; frames
are binary WebSocket messages; the dictionary (ID 1612007021) is a wire fact shipped byte-for-byte in
``zstd/legacy_subscribe_v1.zdict``. Any zstd decoder with that dictionary decodes a frame to exactly the
JSON text a plain subscriber receives.

One reused compressor at level 3 (DESIGN.md: level 6 costs 3× the CPU for 2 %); the frame header carries
the dictionary ID and the content size so stock decoders need nothing else.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import zstandard

__all__ = ["V1_DICTIONARY_ID", "compressor", "decompressor", "v1_dictionary_bytes"]

V1_DICTIONARY_ID = 1612007021
_LEVEL = 3


@cache
def v1_dictionary_bytes() -> bytes:
    return files("atstack.jetstream").joinpath("zstd/legacy_subscribe_v1.zdict").read_bytes()


@cache
def _dictionary() -> zstandard.ZstdCompressionDict:
    d = zstandard.ZstdCompressionDict(v1_dictionary_bytes())
    if d.dict_id() != V1_DICTIONARY_ID:
        raise RuntimeError(f"shipped zstd dictionary has ID {d.dict_id()}, expected {V1_DICTIONARY_ID}")
    return d


def compressor() -> zstandard.ZstdCompressor:
    """A new compressor for v1 frames (not thread-safe: one per thread)."""
    return zstandard.ZstdCompressor(level=_LEVEL, dict_data=_dictionary(), write_content_size=True)


def decompressor() -> zstandard.ZstdDecompressor:
    return zstandard.ZstdDecompressor(dict_data=_dictionary())
