"""The XRPC client against our own server: calls, errors, binary bodies, event-stream subscription."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from atstack.core.stream import decode_frame, encode_message
from atstack.xrpc import (
    EventStreamHub,
    MemoryEventLog,
    XRPCClient,
    XRPCClientError,
    XRPCError,
    XRPCRequest,
    XRPCResponse,
    XRPCRouter,
)
from atstack.xrpc.client import encode_params


def build_app() -> tuple[Any, EventStreamHub, MemoryEventLog]:
    router = XRPCRouter("test")

    @router.query("io.example.echo")
    async def echo(req: XRPCRequest) -> dict[str, Any]:
        return {"params": req.params, "auth": req.headers.get("Authorization")}

    @router.procedure("io.example.create")
    async def create(req: XRPCRequest) -> dict[str, Any]:
        if req.body.get("fail"):
            raise XRPCError(400, "InvalidSwap", "swap mismatch")
        return {"got": req.body}

    @router.procedure("io.example.upload", input="*/*")
    async def upload(req: XRPCRequest) -> XRPCResponse:
        return XRPCResponse(req.body[::-1], "application/octet-stream")

    @router.query("io.example.crash")
    async def crash(req: XRPCRequest) -> None:
        raise ValueError("nope")

    log = MemoryEventLog()
    hub = EventStreamHub(log)
    hub.mount(router)
    return router.create_app(), hub, log


def test_encode_params() -> None:
    assert encode_params({"a": 1, "b": [True, False], "c": None, "d": "x y"}) == [
        ("a", "1"),
        ("b", "true"),
        ("b", "false"),
        ("d", "x y"),
    ]


async def test_query_and_procedure(serve) -> None:
    app, _, _ = build_app()
    base = await serve(app)
    async with XRPCClient(base, headers={"Authorization": "Bearer t"}) as client:
        assert await client.query("io.example.echo", {"tags": ["a", "b"], "n": 3}) == {
            "params": {"tags": ["a", "b"], "n": "3"},
            "auth": "Bearer t",
        }
        assert await client.procedure("io.example.create", {"text": "hi"}) == {"got": {"text": "hi"}}
        assert await client.procedure("io.example.upload", b"abc", content_type="image/png") == b"cba"
        result = await client.call("GET", "io.example.echo")
        assert result.status == 200 and result.content_type == "application/json"


async def test_errors_carry_name_and_message(serve) -> None:
    app, _, _ = build_app()
    base = await serve(app)
    async with XRPCClient(base) as client:
        with pytest.raises(XRPCClientError) as info:
            await client.procedure("io.example.create", {"fail": True})
        assert (info.value.status, info.value.error, info.value.message) == (
            400,
            "InvalidSwap",
            "swap mismatch",
        )
        assert info.value.as_upstream_error().status == 400
        with pytest.raises(XRPCClientError) as info:
            await client.query("io.example.missing")
        assert (info.value.status, info.value.error) == (501, "MethodNotImplemented")
        with pytest.raises(XRPCClientError) as info:
            await client.query("io.example.crash")
        assert (info.value.status, info.value.error) == (500, "InternalServerError")
        upstream = info.value.as_upstream_error()
        assert (upstream.status, upstream.error) == (502, "UpstreamFailure")
        with pytest.raises(ValueError):
            await client.procedure("io.example.upload", b"raw")


async def test_network_error_is_status_zero() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with XRPCClient(f"http://127.0.0.1:{port}") as client:
        with pytest.raises(XRPCClientError) as info:
            await client.query("io.example.echo")
    assert (info.value.status, info.value.error) == (0, "NetworkError")
    assert info.value.as_upstream_error().status == 502


async def test_subscribe_yields_raw_frames(serve) -> None:
    app, hub, log = build_app()
    base = await serve(app)
    for seq in range(1, 11):
        frame = encode_message("#identity", {"seq": seq, "did": "did:plc:x", "time": "t"})
        log.append(seq, frame)
        hub.publish(seq, frame)
    seen = []
    async with XRPCClient(base) as client:
        async for raw in client.subscribe("com.atproto.sync.subscribeRepos", cursor=4):
            seen.append(decode_frame(raw).body["seq"])
            if seen[-1] == 10:
                break
        assert seen == [5, 6, 7, 8, 9, 10]
        future = [
            decode_frame(raw).body async for raw in client.subscribe("com.atproto.sync.subscribeRepos", 99)
        ]
        assert future == [{"error": "FutureCursor", "message": "Cursor in the future."}]
        with pytest.raises(XRPCClientError) as info:
            async for _ in client.subscribe(
                base.replace("http", "ws") + "/xrpc/com.atproto.sync.subscribeRepos?cursor=x"
            ):
                pass
        assert info.value.status == 400
