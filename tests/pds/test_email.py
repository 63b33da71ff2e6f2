"""Email flows over HTTP, with the mail outbox standing in for SMTP: confirmation, address change (token
only once confirmed), password reset; wrong, reused and expired tokens."""

from __future__ import annotations

from pds_extras import outbox
from pds_support import Account, Pds


async def last_token(pds: Pds, recipient: str) -> str:
    messages = [m for m in await outbox(pds) if m.recipient == recipient]
    assert messages, f"no mail to {recipient}"
    return next(w for w in messages[-1].body.split() if len(w) == 11 and w[5] == "-")


async def session(pds: Pds, account: Account) -> dict[str, object]:
    r = await pds.get("com.atproto.server.getSession", headers=account.auth)
    assert r.status == 200, r.body
    return r.body  # type: ignore[no-any-return]


async def test_confirm_email(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    assert (await session(pds, alice))["emailConfirmed"] is False
    r = await pds.post("com.atproto.server.requestEmailConfirmation", headers=alice.auth)
    assert r.status == 200, r.body
    token = await last_token(pds, alice.email)
    cases = [
        ({"email": "other@example.com", "token": token}, "InvalidEmail"),
        ({"email": alice.email, "token": "AAAAA-BBBBB"}, "InvalidToken"),
    ]
    for body, error in cases:
        r = await pds.post("com.atproto.server.confirmEmail", body, alice.auth)
        assert (r.status, r.error) == (400, error)
    assert (await session(pds, alice))["emailConfirmed"] is False
    r = await pds.post(
        "com.atproto.server.confirmEmail", {"email": alice.email.upper(), "token": token.lower()}, alice.auth
    )
    assert r.status == 200, r.body
    assert (await session(pds, alice))["emailConfirmed"] is True
    r = await pds.post("com.atproto.server.confirmEmail", {"email": alice.email, "token": token}, alice.auth)
    assert (r.status, r.error) == (400, "InvalidToken")
    assert (await pds.post("com.atproto.server.requestEmailConfirmation")).status == 401


async def test_update_email(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    bob = await pds.create_account("bob")
    # not confirmed yet: no token needed
    r = await pds.post("com.atproto.server.requestEmailUpdate", headers=alice.auth)
    assert r.body == {"tokenRequired": False}
    assert await outbox(pds) == []
    r = await pds.post("com.atproto.server.updateEmail", {"email": "alice2@example.com"}, alice.auth)
    assert r.status == 200, r.body
    assert (await session(pds, alice))["email"] == "alice2@example.com"
    # confirm the new address; from then on a change needs a token sent to it
    await pds.post("com.atproto.server.requestEmailConfirmation", headers=alice.auth)
    token = await last_token(pds, "alice2@example.com")
    assert (
        await pds.post(
            "com.atproto.server.confirmEmail", {"email": "alice2@example.com", "token": token}, alice.auth
        )
    ).status == 200
    r = await pds.post("com.atproto.server.requestEmailUpdate", headers=alice.auth)
    assert r.body == {"tokenRequired": True}
    token = await last_token(pds, "alice2@example.com")
    cases = [
        ({"email": "alice3@example.com"}, "TokenRequired"),
        ({"email": "alice3@example.com", "token": "AAAAA-BBBBB"}, "InvalidToken"),
        ({"email": bob.email, "token": token}, "InvalidRequest"),
        ({"email": "not-an-address", "token": token}, "InvalidRequest"),
    ]
    for body, error in cases:
        r = await pds.post("com.atproto.server.updateEmail", body, alice.auth)
        assert (r.status, r.error) == (400, error), body
    r = await pds.post(
        "com.atproto.server.updateEmail", {"email": "alice3@example.com", "token": token}, alice.auth
    )
    assert r.status == 200, r.body
    info = await session(pds, alice)
    assert (info["email"], info["emailConfirmed"]) == ("alice3@example.com", False)
    # app passwords cannot change the address
    r = await pds.post("com.atproto.server.createAppPassword", {"name": "app"}, alice.auth)
    login = await pds.post(
        "com.atproto.server.createSession", {"identifier": alice.did, "password": r.body["password"]}
    )
    app = {"Authorization": f"Bearer {login.body['accessJwt']}"}
    r = await pds.post("com.atproto.server.updateEmail", {"email": "alice4@example.com"}, app)
    assert r.status == 400 and r.error == "InvalidToken"
    assert (await session(pds, alice))["email"] == "alice3@example.com"


async def test_password_reset(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    r = await pds.post("com.atproto.server.requestPasswordReset", {"email": "nobody@example.com"})
    assert r.status == 400
    r = await pds.post("com.atproto.server.requestPasswordReset", {"email": alice.email.upper()})
    assert r.status == 200, r.body
    token = await last_token(pds, alice.email)
    r = await pds.post(
        "com.atproto.server.resetPassword", {"token": "AAAAA-BBBBB", "password": "new-password-1"}
    )
    assert (r.status, r.error) == (400, "InvalidToken")
    r = await pds.post("com.atproto.server.resetPassword", {"token": token, "password": "x" * 257})
    assert r.status == 400
    r = await pds.post(
        "com.atproto.server.resetPassword", {"token": token.lower(), "password": "new-password-1"}
    )
    assert r.status == 200, r.body
    r = await pds.post(
        "com.atproto.server.createSession", {"identifier": alice.handle, "password": alice.password}
    )
    assert r.status == 401
    r = await pds.post(
        "com.atproto.server.createSession", {"identifier": alice.handle, "password": "new-password-1"}
    )
    assert r.status == 200
    r = await pds.post(
        "com.atproto.server.refreshSession", headers={"Authorization": f"Bearer {alice.refresh}"}
    )
    assert r.status >= 400  # every earlier session ended
    r = await pds.post("com.atproto.server.resetPassword", {"token": token, "password": "new-password-2"})
    assert (r.status, r.error) == (400, "InvalidToken")
    # an expired token
    await pds.post("com.atproto.server.requestPasswordReset", {"email": alice.email})
    token = await last_token(pds, alice.email)
    pds.clock.advance(16 * 60)
    r = await pds.post("com.atproto.server.resetPassword", {"token": token, "password": "new-password-3"})
    assert (r.status, r.error) == (400, "ExpiredToken")
    r = await pds.post(
        "com.atproto.server.createSession", {"identifier": alice.handle, "password": "new-password-1"}
    )
    assert r.status == 200
