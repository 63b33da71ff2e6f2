"""Password hashing (scrypt) never runs on the event loop and never more than ``MAX_CONCURRENT_HASHES`` at a
time: with every hashing slot held, creating an app password and logging in with one wait while the PDS
keeps answering other requests."""

from __future__ import annotations

import asyncio
import threading

from pds_support import Pds

from atstack.pds import passwords
from atstack.pds.jwt import parse_jwt


async def test_app_password_hashes_run_off_the_event_loop(pds: Pds) -> None:
    alice = await pds.create_account("alice")
    r = await pds.post("com.atproto.server.createAppPassword", {"name": "bot"}, alice.auth)
    assert r.status == 200, r.body
    app_password = r.body["password"]
    held = [passwords._HASHING.acquire(blocking=False) for _ in range(passwords.MAX_CONCURRENT_HASHES)]
    assert all(held)
    released = threading.Event()
    lock = threading.Lock()

    def release() -> None:
        with lock:
            if not released.is_set():
                released.set()
                for _ in held:
                    passwords._HASHING.release()

    # a hash run on the event loop would block it (and this test) until the watchdog lets it through
    watchdog = threading.Timer(10, release)
    watchdog.start()
    try:
        body = {"identifier": alice.handle, "password": app_password}
        login = asyncio.create_task(pds.post("com.atproto.server.createSession", body))
        create = asyncio.create_task(
            pds.post("com.atproto.server.createAppPassword", {"name": "second"}, alice.auth)
        )
        for _ in range(3):
            r = await pds.get("com.atproto.server.describeServer")
            assert r.status == 200
            await asyncio.sleep(0.05)  # let both requests reach their hashes
        assert not released.is_set(), "a password hash blocked the event loop"
        assert not login.done() and not create.done(), "a hash ran without a hashing slot"
    finally:
        release()
        watchdog.cancel()
    r = await login
    assert r.status == 200, r.body
    assert parse_jwt(r.body["accessJwt"]).payload["scope"] == "com.atproto.appPass"
    r = await create
    assert r.status == 200 and r.body["name"] == "second", r.body
