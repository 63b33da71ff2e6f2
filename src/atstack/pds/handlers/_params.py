"""Query-parameter helpers for the handler modules that do not rely on lexicon coercion alone."""

from __future__ import annotations

from atstack.xrpc.errors import InvalidRequestError
from atstack.xrpc.request import XRPCRequest

__all__ = ["int_param"]


def int_param(req: XRPCRequest, name: str, default: int, low: int, high: int) -> int:
    """An integer parameter within ``[low, high]``.

    With lexicons loaded the router has already coerced and range-checked it; without them (a PDS started
    with no lexicon directory) it is still a string, so it is parsed and checked here either way.
    """
    raw = req.params.get(name, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise InvalidRequestError(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise InvalidRequestError(f"{name} must be between {low} and {high}")
    return value
