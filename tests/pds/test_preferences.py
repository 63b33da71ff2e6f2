"""app.bsky.actor.getPreferences / putPreferences over HTTP: round trip (order and repeats kept), namespace and
$type checks, the read-only age preference, app-password limits on personal details, takedown."""

from __future__ import annotations

from typing import Any

from pds_extras import ADMIN
from pds_support import Account, Pds

DEFS = "app.bsky.actor.defs"
PREFS: list[dict[str, Any]] = [
    {"$type": f"{DEFS}#adultContentPref", "enabled": True},
    {"$type": f"{DEFS}#contentLabelPref", "label": "nsfw", "visibility": "warn"},
    {"$type": f"{DEFS}#contentLabelPref", "label": "gore", "visibility": "hide"},
    {"$type": f"{DEFS}#personalDetailsPref", "birthDate": "2000-01-01T00:00:00.000Z"},
    {
        "$type": f"{DEFS}#savedFeedsPrefV2",
        "items": [{"id": "a1", "type": "timeline", "value": "following", "pinned": True}],
    },
]
AGE = {"$type": f"{DEFS}#declaredAgePref", "isOverAge13": True, "isOverAge16": True, "isOverAge18": True}


async def get_prefs(pds: Pds, account: Account) -> Any:
    r = await pds.get("app.bsky.actor.getPreferences", headers=account.auth)
    assert r.status == 200, r.body
    return r.body["preferences"]


async def put_prefs(pds: Pds, account: Account, prefs: list[Any]) -> Any:
    return await pds.post("app.bsky.actor.putPreferences", {"preferences": prefs}, account.auth)


async def test_round_trip(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    bob = await pds.create_account("bob")
    assert await get_prefs(pds, alice) == []
    r = await put_prefs(pds, alice, PREFS)
    assert r.status == 200, r.body
    assert await get_prefs(pds, alice) == [*PREFS, AGE]
    assert await get_prefs(pds, bob) == []
    # a put replaces the whole list; the computed age preference is never stored
    r = await put_prefs(pds, alice, [PREFS[1], AGE])
    assert r.status == 200
    assert await get_prefs(pds, alice) == [PREFS[1]]
    # a young birth date
    young = {"$type": f"{DEFS}#personalDetailsPref", "birthDate": "2020-06-01T00:00:00.000Z"}
    assert (await put_prefs(pds, alice, [young])).status == 200
    assert (await get_prefs(pds, alice))[1] == {
        **AGE,
        "isOverAge13": False,
        "isOverAge16": False,
        "isOverAge18": False,
    }
    assert (await put_prefs(pds, alice, [])).status == 200
    assert await get_prefs(pds, alice) == []
    assert (await pds.get("app.bsky.actor.getPreferences")).status == 401


async def test_refused_preferences_change_nothing(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    assert (await put_prefs(pds, alice, PREFS[:2])).status == 200
    cases = [
        [*PREFS[:1], {"$type": "com.example.pref", "x": 1}],
        [{"$type": "app.bskyfoo.pref"}],
        [{"enabled": True}],
        [{"$type": f"{DEFS}#adultContentPref", "enabled": "yes"}],
        ["not an object"],
    ]
    for prefs in cases:
        r = await put_prefs(pds, alice, prefs)
        assert (r.status, r.error) == (400, "InvalidRequest"), (prefs, r.body)
    r = await put_prefs(pds, alice, [{"$type": "com.example.pref"}])
    assert "not in the app.bsky namespace" in r.body["message"]
    r = await pds.post("app.bsky.actor.putPreferences", {"nope": []}, alice.auth)
    assert r.status == 400
    assert await get_prefs(pds, alice) == PREFS[:2]
    assert len(cases) == 5


async def test_app_password_and_takedown(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    assert (await put_prefs(pds, alice, PREFS)).status == 200
    r = await pds.post("com.atproto.server.createAppPassword", {"name": "phone"}, alice.auth)
    assert r.status == 200, r.body
    login = await pds.post(
        "com.atproto.server.createSession", {"identifier": alice.handle, "password": r.body["password"]}
    )
    assert login.status == 200
    app = Account(alice.did, alice.handle, alice.email, "", login.body["accessJwt"], login.body["refreshJwt"])
    personal = PREFS[3]
    # the birth date stays hidden from, and out of reach of, an app-password session
    assert await get_prefs(pds, app) == [p for p in PREFS if p is not personal] + [AGE]
    r = await put_prefs(pds, app, [personal])
    assert r.status == 400 and "personalDetailsPref" in r.body["message"]
    assert (await put_prefs(pds, app, [PREFS[0]])).status == 200
    assert await get_prefs(pds, alice) == [personal, PREFS[0], AGE]
    # taken down: reads still work (data export), writes do not
    r = await pds.post(
        "com.atproto.admin.updateSubjectStatus",
        {
            "subject": {"$type": "com.atproto.admin.defs#repoRef", "did": alice.did},
            "takedown": {"applied": True},
        },
        ADMIN,
    )
    assert r.status == 200
    assert await get_prefs(pds, alice) == [personal, PREFS[0], AGE]
    r = await put_prefs(pds, alice, [])
    assert (r.status, r.error) == (401, "AccountTakedown")
