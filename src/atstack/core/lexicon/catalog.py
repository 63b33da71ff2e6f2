"""A set of loaded lexicons: reference resolution and the validation entry points.

Spec: atproto.com/specs/lexicon ("Lexicon Files": ``nsid#name`` references, a bare NSID means ``main``;
"Validation Options"), atproto.com/specs/xrpc, atproto.com/specs/event-stream (message bodies carry no
``$type``; the frame header names the variant), atproto.com/specs/record-key (key types).

Validators are compiled on first use and cached per collection / method; adding a document drops the caches
so later references resolve. :func:`load_lexicon_dir` is the one function here that reads files (a startup
convenience for services); everything else is pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from atstack.core.lexicon.compiler import Compiler, union_variants
from atstack.core.lexicon.errors import Invalid, LexiconError, ValidationError
from atstack.core.lexicon.params import ParamSpec, compile_params, decode_params
from atstack.core.lexicon.schema import check_document, ref_key, split_ref
from atstack.core.lexicon.validate import Validator, check_data
from atstack.core.syntax import is_valid_nsid, is_valid_record_key, is_valid_tid

__all__ = ["Lexicons", "load_lexicon_dir"]

MethodType = Literal["query", "procedure", "subscription"]
_METHOD_TYPES = ("query", "procedure", "subscription")


@dataclass(slots=True)
class _Method:
    type: MethodType
    params: tuple[ParamSpec, ...]
    input: dict[str, Any] | None
    output: dict[str, Any] | None
    input_check: Validator | None
    output_check: Validator | None
    message_variants: dict[str, Validator] | None
    message_closed: bool


def _run(check: Validator, value: Any, root: str) -> None:
    try:
        check(value)
    except Invalid as e:
        raise e.to_error(root) from None
    except RecursionError:
        raise ValidationError(root, "is nested too deeply") from None


class Lexicons:
    """A catalog of lexicon documents keyed by NSID, with compiled, cached validators."""

    def __init__(self, docs: Iterable[dict[str, Any]] = ()) -> None:
        self._docs: dict[str, dict[str, Any]] = {}
        self._compiler = Compiler(self._lookup)
        self._records: dict[str, Validator] = {}
        self._methods: dict[str, _Method] = {}
        for doc in docs:
            self.add(doc)

    # -- documents --------------------------------------------------------------------------------------

    def add(self, doc: dict[str, Any]) -> None:
        """Add one lexicon document; raises :class:`LexiconError` if it is invalid or its NSID is taken."""
        check_document(doc)
        nsid = doc["id"]
        if nsid in self._docs:
            raise LexiconError(f"lexicon {nsid} is already loaded")
        self._docs[nsid] = doc
        self._compiler = Compiler(self._lookup)
        self._records.clear()
        self._methods.clear()

    def get(self, nsid: str) -> dict[str, Any] | None:
        return self._docs.get(nsid)

    def get_def(self, ref: str) -> dict[str, Any] | None:
        """The definition named by ``nsid#name`` (a bare NSID means ``#main``)."""
        nsid, name = split_ref(ref, "")
        return self._lookup(nsid, name)

    def __contains__(self, nsid: object) -> bool:
        return nsid in self._docs

    def __iter__(self) -> Iterator[str]:
        return iter(self._docs)

    def __len__(self) -> int:
        return len(self._docs)

    def _lookup(self, nsid: str, name: str) -> dict[str, Any] | None:
        doc = self._docs.get(nsid)
        return None if doc is None else doc["defs"].get(name)

    def _main(self, nsid: str) -> dict[str, Any]:
        d = self._lookup(nsid, "main")
        if d is None:
            raise LexiconError(f"no lexicon loaded for {nsid}")
        return d

    def check_references(self) -> None:
        """Compile every definition with all references required to resolve (a load-time self-check).

        Raises :class:`LexiconError` naming the first unresolved or ill-typed reference.
        """
        strict = Compiler(self._lookup, strict=True)
        for nsid, doc in self._docs.items():
            for name, d in doc["defs"].items():
                t = d["type"]
                try:
                    if t in _METHOD_TYPES:
                        self._compile_method(strict, nsid, d)
                    elif t not in ("token", "permission-set"):
                        strict.def_validator(nsid, name)
                except LexiconError as exc:
                    raise LexiconError(f"{nsid}#{name}: {exc}") from None

    # -- records ----------------------------------------------------------------------------------------

    def record_key_type(self, collection: str) -> str:
        """``tid``, ``nsid``, ``literal:<value>`` or ``any`` for a record collection."""
        d = self._main(collection)
        if d["type"] != "record":
            raise LexiconError(f"{collection} is not a record type")
        return d["key"]

    def validate_record_key(self, collection: str, rkey: str) -> None:
        """Check ``rkey`` against the general record-key syntax and the collection's key type."""
        key_type = self.record_key_type(collection)
        if not isinstance(rkey, str) or not is_valid_record_key(rkey):
            raise ValidationError("RecordKey", "must be a valid record key")
        if key_type == "tid" and not is_valid_tid(rkey):
            raise ValidationError("RecordKey", "must be a TID")
        if key_type == "nsid" and not is_valid_nsid(rkey):
            raise ValidationError("RecordKey", "must be an NSID")
        if key_type.startswith("literal:") and rkey != key_type[8:]:
            raise ValidationError("RecordKey", f'must be "{key_type[8:]}"')

    def validate_record(self, collection: str, value: Any) -> None:
        """Validate a record (data-model form) against the collection's lexicon; ``$type`` must match.

        Raises :class:`ValidationError` for bad data and :class:`LexiconError` if the collection is unknown.
        """
        check = self._records.get(collection)
        if check is None:
            d = self._main(collection)
            if d["type"] != "record":
                raise LexiconError(f"{collection} is not a record type")
            check = self._records[collection] = self._compiler.def_validator(collection, "main")
        _run(check, value, "Record")

    # -- XRPC -------------------------------------------------------------------------------------------

    def method_type(self, nsid: str) -> MethodType | None:
        d = self._lookup(nsid, "main")
        t = d.get("type") if d is not None else None
        return t if t in _METHOD_TYPES else None  # type: ignore[return-value]

    def _compile_method(self, compiler: Compiler, nsid: str, d: dict[str, Any]) -> _Method:
        body_in, body_out = d.get("input"), d.get("output")
        message = d.get("message")
        variants = None
        if message is not None:
            variants = union_variants(compiler, nsid, message["schema"]["refs"])
        return _Method(
            type=d["type"],
            params=compile_params(compiler, nsid, d.get("parameters")),
            input=body_in,
            output=body_out,
            input_check=compiler.field(nsid, body_in["schema"]) if body_in and "schema" in body_in else None,
            output_check=compiler.field(nsid, body_out["schema"])
            if body_out and "schema" in body_out
            else None,
            message_variants=variants,
            message_closed=bool(message and message["schema"].get("closed") is True),
        )

    def _method(self, nsid: str) -> _Method:
        m = self._methods.get(nsid)
        if m is None:
            d = self._main(nsid)
            if d["type"] not in _METHOD_TYPES:
                raise LexiconError(f"{nsid} is not an XRPC method")
            m = self._methods[nsid] = self._compile_method(self._compiler, nsid, d)
        return m

    def input_encoding(self, nsid: str) -> str | None:
        m = self._method(nsid)
        return m.input["encoding"] if m.input else None

    def output_encoding(self, nsid: str) -> str | None:
        m = self._method(nsid)
        return m.output["encoding"] if m.output else None

    def validate_params(self, nsid: str, params: Mapping[str, str | list[str]]) -> dict[str, Any]:
        """Decode query-string parameters (repeated → list), apply defaults and validate them."""
        m = self._method(nsid)
        try:
            return decode_params(m.params, params)
        except Invalid as e:
            raise e.to_error("Params") from None

    def validate_input(self, nsid: str, body: Any) -> None:
        """Validate a procedure's request body. With no declared input, the body must be absent (None)."""
        m = self._method(nsid)
        self._body(m.input, m.input_check, body, "Input")

    def validate_output(self, nsid: str, body: Any) -> None:
        m = self._method(nsid)
        self._body(m.output, m.output_check, body, "Output")

    @staticmethod
    def _body(decl: dict[str, Any] | None, check: Validator | None, body: Any, root: str) -> None:
        if decl is None:
            if body is not None:
                raise ValidationError(root, "must be empty: the method declares no body")
            return
        if check is not None:
            _run(check, body, root)

    def validate_message(self, nsid: str, body: Any, message_type: str | None = None) -> None:
        """Validate one subscription message body.

        On the wire the variant is named by the frame header (``t``, e.g. ``#commit``) rather than a
        ``$type`` in the body; pass it as ``message_type``. A body ``$type`` is used when present.
        Unknown variants pass (clients must ignore them) unless the message union is closed.
        """
        m = self._method(nsid)
        if m.message_variants is None:
            raise LexiconError(f"{nsid} is not a subscription")
        t = body.get("$type") if isinstance(body, dict) else None
        if not isinstance(t, str):
            t = message_type
        if t is None:
            raise ValidationError("Message", "has no $type and no message type was given")
        check = m.message_variants.get(ref_key(*split_ref(t, nsid)))
        if check is None:
            if m.message_closed:
                raise ValidationError("Message", f"type {t} is not one of the declared messages")
            check = _open_message
        _run(check, body, "Message")


def _open_message(body: Any) -> None:
    if type(body) is not dict:
        raise Invalid("must be an object")
    check_data(body)


def load_lexicon_dir(path: str | Path) -> Lexicons:
    """Load every ``*.json`` under ``path`` (recursively, in sorted order) into a new :class:`Lexicons`."""
    root = Path(path)
    if not root.is_dir():
        raise LexiconError(f"lexicon directory not found: {root}")
    lexicons = Lexicons()
    for file in sorted(root.rglob("*.json")):
        try:
            doc = orjson.loads(file.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise LexiconError(f"{file}: not valid JSON: {exc}") from None
        try:
            lexicons.add(doc)
        except LexiconError as exc:
            raise LexiconError(f"{file}: {exc}") from None
    return lexicons
