"""The shipped v1 zstd dictionary is the wire fact, byte for byte, and stock zstandard decodes our frames."""

from __future__ import annotations

import zstandard

import vectors
from atstack.jetstream.compression import V1_DICTIONARY_ID, compressor, v1_dictionary_bytes


def test_dictionary_is_byte_identical_to_the_shared_copy() -> None:
    shared = (vectors.ATPROTO / "jetstream" / "legacy_subscribe_v1.zdict").read_bytes()
    assert len(shared) > 100_000
    assert v1_dictionary_bytes() == shared
    assert zstandard.ZstdCompressionDict(shared).dict_id() == V1_DICTIONARY_ID == 1612007021


def test_frames_decode_with_stock_zstandard() -> None:
    data = b'{"did":"did:plc:x","time_us":1725911162329308,"kind":"commit","commit":{"rev":"3l3qo2vutsw2b"}}'
    frame = compressor().compress(data)
    assert zstandard.get_frame_parameters(frame).dict_id == V1_DICTIONARY_ID
    stock = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(v1_dictionary_bytes()))
    assert stock.decompress(frame) == data
    assert len(frame) < len(data)
