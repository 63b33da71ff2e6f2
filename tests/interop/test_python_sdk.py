"""MarshalX's Python SDK (PyPI ``atproto``), unmodified, against our PDS: account, session, posts, paging,
blobs, deletes and preferences.

Everything goes through ``Client(base_url=...)`` and its generated namespaces, the way an application uses
it; the assertions check what the SDK parsed from our answers.
"""

from __future__ import annotations

import re
import secrets

import pytest
from atproto import Client, models
from atproto_client.exceptions import BadRequestError
from interop_support import Stack, new_handle, png_bytes

POST = "app.bsky.feed.post"


@pytest.fixture(scope="module")
def client(stack: Stack) -> Client:
    """A new account made through ``com.atproto.server.createAccount``, then a password login."""
    client = Client(base_url=stack.pds_url)
    handle, password = new_handle("py"), secrets.token_urlsafe(12)
    created = client.com.atproto.server.create_account(
        models.ComAtprotoServerCreateAccount.Data(
            handle=handle, email=f"{handle.split('.')[0]}@example.com", password=password
        )
    )
    assert created.handle == handle
    assert created.did.startswith("did:plc:")
    assert created.access_jwt and created.refresh_jwt

    # getProfile is an AppView method, not the PDS's: the SDK's documented switch skips that lookup.
    assert client.login(handle, password, fetch_bsky_profile=False) is None
    session = client.com.atproto.server.get_session()
    assert (session.did, session.handle) == (created.did, handle)
    return client


def _did(client: Client) -> str:
    return client.com.atproto.server.get_session().did


def _list_all(client: Client, did: str, *, limit: int, reverse: bool | None = None) -> tuple[list[str], int]:
    """Every record URI of the post collection, following the cursor until it runs out; and the page count."""
    uris: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = client.com.atproto.repo.list_records(
            models.ComAtprotoRepoListRecords.Params(
                repo=did, collection=POST, limit=limit, cursor=cursor, reverse=reverse
            )
        )
        pages += 1
        assert len(page.records) <= limit
        uris += [r.uri for r in page.records]
        if not page.cursor or not page.records:
            return uris, pages
        assert pages < 100, "listRecords never ran out of pages"
        cursor = page.cursor


def test_posts_read_back_and_paginate(client: Client) -> None:
    did = _did(client)
    texts = [f"post {i} from the python sdk ✨ {secrets.token_hex(4)}" for i in range(23)]
    sent = [client.send_post(text, profile_identify=did) for text in texts]
    assert len({s.uri for s in sent}) == 23
    for s in sent:
        assert s.uri.startswith(f"at://{did}/{POST}/")
        assert s.cid.startswith("bafyrei")

    for text, s in zip(texts, sent, strict=True):
        rkey = s.uri.rsplit("/", 1)[1]
        got = client.get_post(rkey, did)
        assert (got.uri, got.cid) == (s.uri, s.cid)
        assert got.value.text == text
        assert got.value.created_at

    uris, pages = _list_all(client, did, limit=5)
    assert sorted(uris) == sorted(s.uri for s in sent)
    assert len(uris) == len(set(uris)) == 23
    assert pages >= 5
    # listRecords defaults to newest first (descending record key); ``reverse`` flips it.
    assert uris == sorted(uris, reverse=True)
    forward, _ = _list_all(client, did, limit=7, reverse=True)
    assert forward == sorted(uris)


def test_blob_upload_image_post_and_get_blob(client: Client) -> None:
    did = _did(client)
    image = png_bytes()
    uploaded = client.upload_blob(image)
    blob = uploaded.blob
    assert blob.mime_type == "image/png"
    assert blob.size == len(image)

    post = client.send_image("a picture", image=image, image_alt="random pixels", profile_identify=did)
    record = client.get_post(post.uri.rsplit("/", 1)[1], did).value
    assert record.embed is not None
    (embedded,) = record.embed.images
    assert embedded.alt == "random pixels"
    assert str(embedded.image.cid) == str(blob.cid)
    assert embedded.image.mime_type == "image/png"
    assert embedded.image.size == len(image)

    data = client.com.atproto.sync.get_blob(models.ComAtprotoSyncGetBlob.Params(did=did, cid=str(blob.cid)))
    assert data == image

    listed = client.com.atproto.sync.list_blobs(models.ComAtprotoSyncListBlobs.Params(did=did))
    assert str(blob.cid) in listed.cids


def test_delete_post(client: Client) -> None:
    did = _did(client)
    keep = client.send_post("this one stays", profile_identify=did)
    gone = client.send_post("this one goes", profile_identify=did)
    assert client.delete_post(gone.uri) is True

    with pytest.raises(BadRequestError) as err:
        client.get_post(gone.uri.rsplit("/", 1)[1], did)
    assert err.value.response is not None
    assert err.value.response.status_code == 400
    assert err.value.response.content.error == "RecordNotFound"

    uris, _ = _list_all(client, did, limit=50)
    assert keep.uri in uris
    assert gone.uri not in uris
    assert client.get_post(keep.uri.rsplit("/", 1)[1], did).value.text == "this one stays"


def test_preferences_round_trip(client: Client, stack: Stack) -> None:
    if stack.kind == "external":
        # The reference PDS forwards preferences to an AppView; without one configured it answers this.
        with pytest.raises(
            BadRequestError, match=re.escape("No service configured for app.bsky.actor.getPreferences")
        ):
            client.app.bsky.actor.get_preferences()
        return
    before = client.app.bsky.actor.get_preferences()
    assert isinstance(before.preferences, list)
    prefs = [
        models.AppBskyActorDefs.AdultContentPref(enabled=True),
        models.AppBskyActorDefs.ContentLabelPref(label="gore", visibility="hide"),
    ]
    client.app.bsky.actor.put_preferences(models.AppBskyActorPutPreferences.Data(preferences=prefs))
    after = client.app.bsky.actor.get_preferences().preferences
    assert [p.py_type for p in after] == [
        "app.bsky.actor.defs#adultContentPref",
        "app.bsky.actor.defs#contentLabelPref",
    ]
    assert after[0].enabled is True
    assert (after[1].label, after[1].visibility) == ("gore", "hide")
