"""XRPC routing over real HTTP: success paths, every error path, CORS, health, metrics, lexicon hooks."""

from __future__ import annotations

import gzip
import logging
from typing import Any

import aiohttp
import orjson
import pytest

from atstack import __version__
from atstack.core.cid import cid_for_raw
from atstack.core.lexicon import Lexicons
from atstack.xrpc import (
    AuthRequiredError,
    XRPCError,
    XRPCRequest,
    XRPCResponse,
    XRPCRouter,
)
from atstack.xrpc.server import DEFAULT_JSON_LIMIT


def make_router(**kwargs: Any) -> XRPCRouter:
    router = XRPCRouter("test", **kwargs)

    @router.query("io.example.echoParams")
    async def echo_params(req: XRPCRequest) -> dict[str, Any]:
        return {"params": req.params}

    @router.procedure("io.example.echoBody")
    async def echo_body(req: XRPCRequest) -> dict[str, Any]:
        return {"body": req.body}

    @router.procedure("io.example.noInput", input=None)
    async def no_input(req: XRPCRequest) -> None:
        return None

    @router.query("io.example.boom")
    async def boom(req: XRPCRequest) -> dict[str, Any]:
        raise RuntimeError("secret database password in traceback")

    @router.query("io.example.notFound")
    async def not_found(req: XRPCRequest) -> dict[str, Any]:
        raise XRPCError(400, "RecordNotFound", "Could not locate record: at://x")

    @router.query("io.example.needsAuth")
    async def needs_auth(req: XRPCRequest) -> dict[str, Any]:
        raise AuthRequiredError("Authentication Required")

    @router.query("io.example.dataModel")
    async def data_model(req: XRPCRequest) -> dict[str, Any]:
        return {"cid": cid_for_raw(b"blob"), "raw": b"\x00\x01\xff"}

    @router.query("io.example.car")
    async def car(req: XRPCRequest) -> XRPCResponse:
        return XRPCResponse(b"\x01\x02", "application/vnd.ipld.car", {"atproto-repo-rev": "3kabc"})

    @router.query("io.example.streamed")
    async def streamed(req: XRPCRequest) -> XRPCResponse:
        async def chunks() -> Any:
            for i in range(100):
                yield bytes([i]) * 1000

        return XRPCResponse(chunks(), "application/octet-stream")

    @router.procedure("io.example.upload", input="*/*", max_body=1000)
    async def upload(req: XRPCRequest) -> dict[str, Any]:
        return {"size": len(req.body), "encoding": req.encoding}

    @router.procedure(
        "io.example.uploadStream", input="application/vnd.ipld.car", stream_input=True, max_body=5000
    )
    async def upload_stream(req: XRPCRequest) -> dict[str, Any]:
        total = 0
        async for chunk in req.iter_body():
            total += len(chunk)
        return {"size": total}

    return router


async def error_of(response: aiohttp.ClientResponse) -> dict[str, Any]:
    assert response.content_type == "application/json"
    return orjson.loads(await response.read())


async def test_query_params_repeated_names_become_lists(serve, http) -> None:
    base = await serve(make_router().create_app())
    async with http.get(f"{base}/xrpc/io.example.echoParams?a=1&b=x&b=y") as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        assert await r.json() == {"params": {"a": "1", "b": ["x", "y"]}}


async def test_procedure_json_roundtrip_and_empty_answer(serve, http) -> None:
    base = await serve(make_router().create_app())
    async with http.post(f"{base}/xrpc/io.example.echoBody", json={"text": "héllo", "n": 3}) as r:
        assert r.status == 200
        assert await r.json() == {"body": {"text": "héllo", "n": 3}}
    async with http.post(f"{base}/xrpc/io.example.noInput") as r:
        assert r.status == 200
        assert await r.read() == b""


async def test_head_on_query_is_allowed(serve, http) -> None:
    base = await serve(make_router().create_app())
    async with http.head(f"{base}/xrpc/io.example.echoParams") as r:
        assert r.status == 200


async def test_unknown_nsid_is_501(serve, http) -> None:
    base = await serve(make_router().create_app())
    for method in ("GET", "POST"):
        async with http.request(method, f"{base}/xrpc/io.example.nothingHere") as r:
            assert r.status == 501
            assert await error_of(r) == {"error": "MethodNotImplemented", "message": "Method Not Implemented"}


async def test_path_that_is_not_an_nsid_is_400(serve, http) -> None:
    base = await serve(make_router().create_app())
    async with http.get(f"{base}/xrpc/not-an-nsid") as r:
        assert r.status == 400
        assert (await error_of(r))["error"] == "InvalidRequest"


async def test_wrong_verb_is_400(serve, http) -> None:
    base = await serve(make_router().create_app())
    async with http.post(f"{base}/xrpc/io.example.echoParams", json={}) as r:
        assert r.status == 400
        body = await error_of(r)
        assert body == {"error": "InvalidRequest", "message": "Incorrect HTTP method (POST) expected GET"}
    async with http.get(f"{base}/xrpc/io.example.echoBody") as r:
        assert r.status == 400
        assert (await error_of(r))["message"] == "Incorrect HTTP method (GET) expected POST"


async def test_malformed_and_non_object_json_are_400(serve, http) -> None:
    base = await serve(make_router().create_app())
    url = f"{base}/xrpc/io.example.echoBody"
    headers = {"Content-Type": "application/json"}
    async with http.post(url, data=b'{"a": ', headers=headers) as r:
        assert r.status == 400
        body = await error_of(r)
        assert body["error"] == "InvalidRequest"
        assert body["message"].startswith("Invalid JSON body")
    async with http.post(url, data=b"[1, 2]", headers=headers) as r:
        assert r.status == 400
        assert (await error_of(r))["message"] == "JSON body must be an object"


async def test_body_presence_and_content_type_checks(serve, http) -> None:
    base = await serve(make_router().create_app())
    cases = [
        ("io.example.echoBody", None, None, "A request body is expected but none was provided"),
        ("io.example.echoBody", b"{}", None, "Request encoding (Content-Type) required but not provided"),
        ("io.example.echoBody", b"{}", "text/plain", "Wrong request encoding (Content-Type): text/plain"),
        (
            "io.example.noInput",
            b"{}",
            "application/json",
            "A request body was provided when none was expected",
        ),
    ]
    for nsid, data, content_type, message in cases:
        headers = {"Content-Type": content_type} if content_type else {}
        async with http.post(
            f"{base}/xrpc/{nsid}", data=data, headers=headers, skip_auto_headers=["Content-Type"]
        ) as r:
            assert r.status == 400, (nsid, message)
            assert await error_of(r) == {"error": "InvalidRequest", "message": message}


async def test_charset_parameter_in_content_type_is_accepted(serve, http) -> None:
    base = await serve(make_router().create_app())
    headers = {"Content-Type": "Application/JSON; charset=utf-8"}
    async with http.post(f"{base}/xrpc/io.example.echoBody", data=b'{"a":1}', headers=headers) as r:
        assert r.status == 200
        assert await r.json() == {"body": {"a": 1}}


async def test_oversize_json_is_413_by_length_and_by_stream(serve, http) -> None:
    base = await serve(make_router().create_app())
    url = f"{base}/xrpc/io.example.echoBody"
    big = orjson.dumps({"text": "x" * DEFAULT_JSON_LIMIT})
    async with http.post(url, data=big, headers={"Content-Type": "application/json"}) as r:
        assert r.status == 413
        assert (await error_of(r))["error"] == "PayloadTooLarge"

    async def chunked() -> Any:  # no Content-Length: the limit must hold while reading
        for _ in range(40):
            yield b" " * 8192

    async with http.post(url, data=chunked(), headers={"Content-Type": "application/json"}) as r:
        assert r.status == 413
        assert (await error_of(r))["error"] == "PayloadTooLarge"


async def test_compressed_body_limit_applies_to_inflated_size(serve, http) -> None:
    base = await serve(make_router().create_app())
    bomb = gzip.compress(b"a" * 100_000)
    headers = {"Content-Type": "image/png", "Content-Encoding": "gzip"}
    async with http.post(f"{base}/xrpc/io.example.upload", data=bomb, headers=headers) as r:
        assert len(bomb) < 1000
        assert r.status == 413


async def test_binary_and_streamed_inputs(serve, http) -> None:
    base = await serve(make_router().create_app())
    async with http.post(
        f"{base}/xrpc/io.example.upload",
        data=b"\x89PNG" + b"\x00" * 500,
        headers={"Content-Type": "image/png"},
    ) as r:
        assert r.status == 200
        assert await r.json() == {"size": 504, "encoding": "image/png"}
    async with http.post(
        f"{base}/xrpc/io.example.upload", data=b"\x00" * 1001, headers={"Content-Type": "image/png"}
    ) as r:
        assert r.status == 413
    car = {"Content-Type": "application/vnd.ipld.car"}
    async with http.post(f"{base}/xrpc/io.example.uploadStream", data=b"\x01" * 4000, headers=car) as r:
        assert r.status == 200
        assert await r.json() == {"size": 4000}

    async def chunked() -> Any:
        for _ in range(10):
            yield b"\x01" * 1000

    async with http.post(f"{base}/xrpc/io.example.uploadStream", data=chunked(), headers=car) as r:
        assert r.status == 413
        assert (await error_of(r))["error"] == "PayloadTooLarge"


async def test_handler_exception_is_generic_500_and_logged(serve, http, caplog) -> None:
    base = await serve(make_router().create_app())
    with caplog.at_level(logging.ERROR, logger="atstack.xrpc"):
        async with http.get(f"{base}/xrpc/io.example.boom") as r:
            assert r.status == 500
            raw = await r.read()
    assert orjson.loads(raw) == {"error": "InternalServerError", "message": "Internal Server Error"}
    assert b"secret" not in raw
    logged = [rec for rec in caplog.records if rec.exc_info]
    assert logged, "the exception must be logged with its traceback"
    assert "secret database password" in str(logged[0].exc_info[1])


async def test_lexicon_declared_error_name_and_401_challenge(serve, http) -> None:
    base = await serve(make_router().create_app())
    async with http.get(f"{base}/xrpc/io.example.notFound") as r:
        assert r.status == 400
        assert await error_of(r) == {"error": "RecordNotFound", "message": "Could not locate record: at://x"}
    async with http.get(f"{base}/xrpc/io.example.needsAuth") as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"] == "Bearer"
        assert (await error_of(r))["error"] == "AuthenticationRequired"


async def test_data_model_values_are_serialised_as_atproto_json(serve, http) -> None:
    base = await serve(make_router().create_app())
    async with http.get(f"{base}/xrpc/io.example.dataModel") as r:
        body = await r.json()
    assert body == {"cid": {"$link": cid_for_raw(b"blob").encode()}, "raw": {"$bytes": "AAH/"}}


async def test_binary_and_streamed_outputs(serve, http) -> None:
    base = await serve(make_router().create_app())
    async with http.get(f"{base}/xrpc/io.example.car") as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/vnd.ipld.car"
        assert r.headers["atproto-repo-rev"] == "3kabc"
        assert await r.read() == b"\x01\x02"
    async with http.get(f"{base}/xrpc/io.example.streamed") as r:
        assert r.status == 200
        assert await r.read() == b"".join(bytes([i]) * 1000 for i in range(100))


async def test_auth_hook_fills_auth_slot_and_can_refuse(serve, http) -> None:
    router = XRPCRouter("test")

    async def bearer(req: XRPCRequest) -> str:
        token = req.headers.get("Authorization", "")
        if token != "Bearer good":
            raise AuthRequiredError("Bad token", "InvalidToken")
        return "did:plc:alice"

    @router.query("io.example.whoami", auth=bearer)
    async def whoami(req: XRPCRequest) -> dict[str, Any]:
        return {"did": req.auth}

    base = await serve(router.create_app())
    async with http.get(f"{base}/xrpc/io.example.whoami", headers={"Authorization": "Bearer good"}) as r:
        assert await r.json() == {"did": "did:plc:alice"}
    async with http.get(f"{base}/xrpc/io.example.whoami") as r:
        assert r.status == 401
        assert "WWW-Authenticate" in r.headers
        assert await error_of(r) == {"error": "InvalidToken", "message": "Bad token"}


async def test_cors_preflight_and_headers_on_every_response(serve, http) -> None:
    base = await serve(make_router().create_app())
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,atproto-proxy",
    }
    async with http.options(f"{base}/xrpc/io.example.echoBody", headers=preflight) as r:
        assert r.status == 204
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert "POST" in r.headers["Access-Control-Allow-Methods"].split(",")
        assert r.headers["Access-Control-Allow-Headers"] == "authorization,content-type,atproto-proxy"
        assert r.headers["Access-Control-Max-Age"] == "86400"
    for path in ("/xrpc/io.example.echoParams", "/xrpc/io.example.boom", "/xrpc/io.example.nothing", "/nope"):
        async with http.get(f"{base}{path}", headers={"Origin": "https://app.example"}) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "*", path
            exposed = r.headers["Access-Control-Expose-Headers"]
            assert "RateLimit-Remaining" in exposed and "atproto-repo-rev" in exposed


async def test_non_xrpc_404_is_json_too(serve, http) -> None:
    base = await serve(make_router().create_app())
    async with http.get(f"{base}/no/such/path") as r:
        assert r.status == 404
        assert (await error_of(r))["error"] == "NotFound"


async def test_health_reports_version_and_failing_check(serve, http) -> None:
    base = await serve(make_router().create_app())
    async with http.get(f"{base}/xrpc/_health") as r:
        assert r.status == 200
        assert await r.json() == {"version": __version__}

    async def broken() -> None:
        raise OSError("database unavailable")

    base = await serve(make_router(health_check=broken, version="9.9").create_app())
    async with http.get(f"{base}/xrpc/_health") as r:
        assert r.status == 503
        assert await r.json() == {"version": "9.9", "error": "Service Unavailable"}


async def test_metrics_exposition_counts_requests(serve, http) -> None:
    base = await serve(make_router().create_app())
    for _ in range(3):
        async with http.get(f"{base}/xrpc/io.example.echoParams") as r:
            assert r.status == 200
    async with http.get(f"{base}/xrpc/io.example.invented1") as r:
        assert r.status == 501
    async with http.get(f"{base}/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    assert 'xrpc_requests_total{method="GET",nsid="io.example.echoParams",status="200"} 3.0' in text
    assert 'xrpc_requests_total{method="GET",nsid="_unknown",status="501"} 1.0' in text
    assert "invented1" not in text
    assert 'xrpc_request_duration_seconds_count{nsid="io.example.echoParams"} 3.0' in text


async def test_access_log_line_per_request(serve, http, caplog) -> None:
    base = await serve(make_router().create_app())
    with caplog.at_level(logging.INFO, logger="atstack.access"):
        async with http.get(f"{base}/xrpc/io.example.notFound") as r:
            assert r.status == 400
    lines = [rec for rec in caplog.records if rec.name == "atstack.access"]
    assert len(lines) == 1
    rec = lines[0]
    assert (rec.method, rec.nsid, rec.status, rec.error) == (
        "GET",
        "io.example.notFound",
        400,
        "RecordNotFound",
    )
    assert rec.ms >= 0


async def test_fallback_takes_unknown_methods(serve, http) -> None:
    async def proxy(req: XRPCRequest) -> dict[str, Any]:
        return {"proxied": req.nsid, "params": req.params}

    base = await serve(make_router(fallback=proxy).create_app())
    async with http.get(f"{base}/xrpc/app.bsky.feed.getTimeline?limit=5") as r:
        assert r.status == 200
        assert await r.json() == {"proxied": "app.bsky.feed.getTimeline", "params": {"limit": "5"}}


LEXICONS = [
    {
        "lexicon": 1,
        "id": "io.example.lex.list",
        "defs": {
            "main": {
                "type": "query",
                "parameters": {
                    "type": "params",
                    "required": ["actor"],
                    "properties": {
                        "actor": {"type": "string", "format": "did"},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "reverse": {"type": "boolean"},
                    },
                },
                "output": {
                    "encoding": "application/json",
                    "schema": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}},
                },
            }
        },
    },
    {
        "lexicon": 1,
        "id": "io.example.lex.create",
        "defs": {
            "main": {
                "type": "procedure",
                "input": {
                    "encoding": "application/json",
                    "schema": {
                        "type": "object",
                        "required": ["text"],
                        "properties": {
                            "text": {"type": "string", "maxLength": 10},
                            "ref": {"type": "cid-link"},
                        },
                    },
                },
            }
        },
    },
    {
        "lexicon": 1,
        "id": "io.example.lex.upload",
        "defs": {"main": {"type": "procedure", "input": {"encoding": "*/*"}}},
    },
]


def lexicon_router(validate_output: bool = False) -> XRPCRouter:
    router = XRPCRouter("test", lexicons=Lexicons(LEXICONS), validate_output=validate_output)

    @router.query("io.example.lex.list")
    async def list_(req: XRPCRequest) -> dict[str, Any]:
        if req.params.get("reverse"):
            return {"n": "not an int"}
        return {"n": 1, "params": req.params}

    @router.procedure("io.example.lex.create")
    async def create(req: XRPCRequest) -> dict[str, Any]:
        ref = req.data_model().get("ref")
        return {"text": req.body["text"], "refType": type(ref).__name__}

    @router.procedure("io.example.lex.upload")
    async def upload(req: XRPCRequest) -> dict[str, Any]:
        return {"size": len(req.body)}

    return router


async def test_lexicon_params_are_coerced_and_validated(serve, http) -> None:
    base = await serve(lexicon_router().create_app())
    url = f"{base}/xrpc/io.example.lex.list"
    async with http.get(f"{url}?actor=did:plc:abc&limit=7&tags=a&tags=b") as r:
        assert r.status == 200
        assert (await r.json())["params"] == {"actor": "did:plc:abc", "limit": 7, "tags": ["a", "b"]}
    async with http.get(f"{url}?actor=did:plc:abc") as r:
        assert (await r.json())["params"]["limit"] == 50
    for query in ("limit=5", "actor=did:plc:abc&limit=500", "actor=did:plc:abc&limit=many", "actor=nope"):
        async with http.get(f"{url}?{query}") as r:
            assert r.status == 400, query
            body = await error_of(r)
            assert body["error"] == "InvalidRequest"
            assert body["message"].startswith("Params"), body


async def test_lexicon_input_is_validated_and_converted(serve, http) -> None:
    base = await serve(lexicon_router().create_app())
    url = f"{base}/xrpc/io.example.lex.create"
    link = {"$link": cid_for_raw(b"x").encode()}
    async with http.post(url, json={"text": "hi", "ref": link}) as r:
        assert r.status == 200
        assert await r.json() == {"text": "hi", "refType": "CID"}
    for bad in ({"text": "far too long for it"}, {"ref": link}, {"text": "hi", "ref": {"$link": "nope"}}):
        async with http.post(url, json=bad) as r:
            assert r.status == 400, bad
            assert (await error_of(r))["error"] == "InvalidRequest"
    async with http.post(
        url, data=b'{"text": "hi", "x": 1.5}', headers={"Content-Type": "application/json"}
    ) as r:
        assert r.status == 400, "floats are not in the data model"


async def test_lexicon_input_encoding_is_used_for_registration(serve, http) -> None:
    base = await serve(lexicon_router().create_app())
    async with http.post(
        f"{base}/xrpc/io.example.lex.upload", data=b"abc", headers={"Content-Type": "image/jpeg"}
    ) as r:
        assert r.status == 200
        assert await r.json() == {"size": 3}


async def test_lexicon_output_validation_is_a_500(serve, http) -> None:
    base = await serve(lexicon_router(validate_output=True).create_app())
    async with http.get(f"{base}/xrpc/io.example.lex.list?actor=did:plc:abc&reverse=true") as r:
        assert r.status == 500
        assert (await error_of(r))["message"] == "Internal Server Error"
    async with http.get(f"{base}/xrpc/io.example.lex.list?actor=did:plc:abc") as r:
        assert r.status == 200


def test_registration_must_match_lexicon_kind() -> None:
    router = XRPCRouter("test", lexicons=Lexicons(LEXICONS))
    with pytest.raises(ValueError, match="is a query in its lexicon"):
        router.procedure("io.example.lex.list")(lambda req: None)  # type: ignore[arg-type,return-value]
    router.query("io.example.lex.list")(lambda req: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="already registered"):
        router.query("io.example.lex.list")(lambda req: None)  # type: ignore[arg-type,return-value]
