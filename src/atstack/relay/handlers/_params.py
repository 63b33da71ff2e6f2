"""Query-parameter helpers (the relay runs without lexicon-driven coercion)."""

from __future__ import annotations

from typing import Any

from atstack.xrpc.errors import InvalidRequestError

__all__ = ["int_param", "str_param"]


def str_param(params: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise InvalidRequestError(f'Error: Params must have the property "{name}"')
        return None
    if isinstance(value, list):
        raise InvalidRequestError(f"{name} must be given once")
    return str(value)


def int_param(params: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    raw = str_param(params, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequestError(f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise InvalidRequestError(f"{name} must be between {lo} and {hi}")
    return value
