"""``app.bsky.actor.getPreferences`` / ``putPreferences``: the account's private preferences, kept by the PDS.

Behaviour anchored on the reference PDS's preference store (the ``app.bsky`` namespace only):

* ``putPreferences`` replaces the whole list. Every item must be an object with a string ``$type`` (400
  "Preference is missing a $type") in the ``app.bsky`` namespace (``app.bsky`` or ``app.bsky.…``; else
  400 "Some preferences are not in the app.bsky namespace"); known types are checked by the lexicon of the
  method's input. Order and repeated types (one ``contentLabelPref`` per label) are kept;
* ``personalDetailsPref`` (the birth date) needs a full-access session: an app-password session may not
  set it (400), does not see it, and its puts leave the stored one in place;
* ``declaredAgePref`` is read-only: dropped from puts, and computed on reads from the birth date
  (``isOverAge13/16/18``);
* reads are allowed to a taken-down account (to export its data); writes are not.

Storage: rows of the ``account_pref`` table (:mod:`atstack.pds.store.preferences`) named
``app.bsky#<position>`` (zero-padded, so name order is list order), each holding one preference's JSON.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from atstack.pds.auth import SCOPE_ACCESS
from atstack.pds.handlers._util import auth_did
from atstack.pds.store import preferences
from atstack.xrpc.errors import InvalidRequestError
from atstack.xrpc.request import XRPCRequest
from atstack.xrpc.server import XRPCRouter

if TYPE_CHECKING:
    from atstack.pds.context import PdsContext

__all__ = ["NAMESPACE", "register"]

NAMESPACE = "app.bsky"
PERSONAL_DETAILS = "app.bsky.actor.defs#personalDetailsPref"
DECLARED_AGE = "app.bsky.actor.defs#declaredAgePref"
_ROW_PREFIX = NAMESPACE + "#"


def _in_namespace(pref_type: str) -> bool:
    return pref_type == NAMESPACE or pref_type.startswith(NAMESPACE + ".")


def _age(birth_date: str, today: datetime) -> int | None:
    try:
        born = datetime.fromisoformat(birth_date.replace("Z", "+00:00"))
    except ValueError:
        return None
    years = today.year - born.year
    if (today.month, today.day) < (born.month, born.day):
        years -= 1
    return years


def register(router: XRPCRouter, ctx: PdsContext) -> None:
    auth = ctx.auth

    def read_prefs(conn: sqlite3.Connection, did: str) -> list[dict[str, Any]]:
        return [orjson.loads(value) for _name, value in preferences.get_preferences(conn, did, _ROW_PREFIX)]

    @router.query("app.bsky.actor.getPreferences", auth=auth.access_standard)
    async def get_preferences(req: XRPCRequest) -> dict[str, Any]:
        did = auth_did(req)
        full = req.auth.scope == SCOPE_ACCESS
        prefs = await ctx.db.read(lambda conn: read_prefs(conn, did))
        details = next((p for p in prefs if p.get("$type") == PERSONAL_DETAILS), None)
        birth = details.get("birthDate") if details is not None else None
        if isinstance(birth, str):
            age = _age(birth, datetime.fromtimestamp(ctx.clock(), UTC))
            if age is not None:
                prefs.append(
                    {
                        "$type": DECLARED_AGE,
                        "isOverAge13": age >= 13,
                        "isOverAge16": age >= 16,
                        "isOverAge18": age >= 18,
                    }
                )
        if not full:
            prefs = [p for p in prefs if p.get("$type") != PERSONAL_DETAILS]
        return {"preferences": prefs}

    @router.procedure("app.bsky.actor.putPreferences", auth=auth.access(check_takedown=True))
    async def put_preferences(req: XRPCRequest) -> None:
        did = auth_did(req)
        full = req.auth.scope == SCOPE_ACCESS
        items = req.body.get("preferences")
        if not isinstance(items, list):
            raise InvalidRequestError("preferences must be an array")
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("$type"), str):
                raise InvalidRequestError("Preference is missing a $type")
        if not all(_in_namespace(item["$type"]) for item in items):
            raise InvalidRequestError(f"Some preferences are not in the {NAMESPACE} namespace")
        forbidden = [item["$type"] for item in items if not full and item["$type"] == PERSONAL_DETAILS]
        if forbidden:
            raise InvalidRequestError(f"Do not have authorization to set preferences: {', '.join(forbidden)}")
        new = [item for item in items if item["$type"] != DECLARED_AGE]

        def write(conn: sqlite3.Connection) -> None:
            # an app-password session cannot see the personal details, so its put must not erase them
            kept = [] if full else [p for p in read_prefs(conn, did) if p.get("$type") == PERSONAL_DETAILS]
            rows = [
                (f"{_ROW_PREFIX}{i:06d}", orjson.dumps(pref).decode()) for i, pref in enumerate([*kept, *new])
            ]
            preferences.put_preferences(conn, did, _ROW_PREFIX, rows)

        await ctx.db.execute_write(write)
