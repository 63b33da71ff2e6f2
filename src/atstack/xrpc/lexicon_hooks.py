"""Optional lexicon checks for XRPC routes, on top of :class:`atstack.core.lexicon.Lexicons`.

Spec: atproto.com/specs/xrpc and /lexicon. Parameters are decoded and validated (a bad one is 400
``InvalidRequest`` with the validator's reason); JSON inputs are turned into the data-model form (``$link``
→ CID, ``$bytes`` → bytes, floats refused) and validated the same way. Output validation failures are our
bug, so they are 500s (logged, not echoed). Methods the catalog does not know pass unchecked: a service may
serve methods without shipping their lexicons.
"""

from __future__ import annotations

import logging
from typing import Any

from atstack.core.lexicon import LexiconError, Lexicons, ValidationError
from atstack.xrpc.errors import InternalServerError, InvalidRequestError
from atstack.xrpc.request import json_to_data_model

__all__ = ["UNKNOWN", "LexiconHooks"]

log = logging.getLogger("atstack.xrpc")

UNKNOWN: Any = object()


class LexiconHooks:
    """Adapts a ``Lexicons`` catalog to the router's needs (unknown methods are skipped)."""

    __slots__ = ("lexicons",)

    def __init__(self, lexicons: Lexicons) -> None:
        self.lexicons = lexicons

    def knows(self, nsid: str) -> bool:
        return self.lexicons.method_type(nsid) is not None

    def method_type(self, nsid: str) -> str | None:
        return self.lexicons.method_type(nsid)

    def input_encoding(self, nsid: str) -> Any:
        """The declared input encoding (``None`` = no input), or :data:`UNKNOWN`."""
        if not self.knows(nsid):
            return UNKNOWN
        return self.lexicons.input_encoding(nsid)

    def params(self, nsid: str, raw: dict[str, str | list[str]]) -> dict[str, Any]:
        if not self.knows(nsid):
            return dict(raw)
        try:
            return self.lexicons.validate_params(nsid, raw)
        except ValidationError as exc:
            raise InvalidRequestError(str(exc)) from None

    def input(self, nsid: str, body: dict[str, Any]) -> Any:
        """Validate a JSON body; returns its data-model form."""
        data = json_to_data_model(body)
        if self.knows(nsid):
            try:
                self.lexicons.validate_input(nsid, data)
            except ValidationError as exc:
                raise InvalidRequestError(str(exc)) from None
        return data

    def output(self, nsid: str, body: Any) -> None:
        if not self.knows(nsid):
            return
        try:
            self.lexicons.validate_output(nsid, json_to_data_model(body) if isinstance(body, dict) else body)
        except (ValidationError, LexiconError, InvalidRequestError) as exc:
            log.error("%s: handler output does not match its lexicon: %s", nsid, exc)
            raise InternalServerError(f"invalid output for {nsid}") from None
