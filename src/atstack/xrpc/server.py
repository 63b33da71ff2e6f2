"""XRPC routing on aiohttp: handlers registered by NSID, served at ``/xrpc/<nsid>``.

Spec: atproto.com/specs/xrpc, checklist §8; behaviour anchored on the reference ``@atproto/xrpc-server``:

* a query answers GET (and HEAD), a procedure POST; the other verb is 400 ``InvalidRequest``
  ("Incorrect HTTP method"); an NSID nobody registered is 501 ``MethodNotImplemented`` unless a
  ``fallback`` (service proxying) takes it; a path that is not an NSID is 400;
* each request goes: global rate limits → parameters (lexicon-validated when a ``Lexicons`` is given)
  → auth hook → body (encoding, size, JSON) → route rate limits → handler;
* errors become ``{"error", "message"}`` JSON with their status; an unexpected exception is logged with
  its traceback and answered 500 ``InternalServerError`` without details;
* a subscription refuses non-GET with 405 and a request without ``Upgrade: websocket`` with 426, both
  as JSON XRPC errors, before its handler (which performs the upgrade) runs;
* ``GET /xrpc/_health`` answers ``{"version"}`` (503 while the service's health check fails),
  ``GET /metrics`` the Prometheus text; every response gets the reference's CORS headers.

Dispatch is one aiohttp route ``/xrpc/{nsid}`` and a dict lookup, so verb errors, 501 and the fallback are
decided here rather than by aiohttp's router (whose 404/405 would not be XRPC-shaped).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from atstack import __version__
from atstack.core.lexicon import Lexicons
from atstack.xrpc.cors import add_cors_headers, preflight_response
from atstack.xrpc.errors import (
    InternalServerError,
    InvalidRequestError,
    MethodNotImplementedError,
    XRPCError,
)
from atstack.xrpc.lexicon_hooks import UNKNOWN, LexiconHooks
from atstack.xrpc.logs import ACCESS_LOGGER
from atstack.xrpc.metrics import UNKNOWN_NSID, XRPCMetrics
from atstack.xrpc.ratelimit import RouteRateLimit, apply_rate_limits
from atstack.xrpc.request import (
    JSON_ENCODING,
    XRPCRequest,
    XRPCResponse,
    content_length,
    encoding_accepted,
    has_body,
    json_bytes,
    normalize_mime,
    parse_json_object,
    query_params,
)

__all__ = ["AuthHook", "Handler", "Route", "XRPCRouter", "error_response"]

log = logging.getLogger("atstack.xrpc")
access_log = logging.getLogger(ACCESS_LOGGER)

HandlerResult = dict[str, Any] | XRPCResponse | web.StreamResponse | None
Handler = Callable[[XRPCRequest], Awaitable[HandlerResult]]
AuthHook = Callable[[XRPCRequest], Awaitable[Any]]
HealthCheck = Callable[[], Awaitable[None]]

_XRPC_REQUEST_KEY = web.RequestKey("atstack.xrpc.request", XRPCRequest)
# Loose NSID shape (≥3 dot-separated segments); full syntax checks belong to the lexicon layer.
_NSID_SHAPE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*(\.[A-Za-z0-9-]+)+\.[A-Za-z][A-Za-z0-9]*$")
_FROM_LEXICON: Any = object()

DEFAULT_JSON_LIMIT = 150 * 1024  # the reference PDS's jsonLimit
DEFAULT_BODY_LIMIT = 5 * 1024 * 1024  # the reference PDS's default blob upload limit


@dataclass(slots=True)
class Route:
    """One registered method. ``input`` is the lexicon input encoding (``None``: no body allowed)."""

    nsid: str
    kind: str  # "query" | "procedure" | "subscription"
    handler: Handler
    input: str | None = None
    stream_input: bool = False
    max_body: int | None = None
    auth: AuthHook | None = None
    rate_limits: tuple[RouteRateLimit, ...] = ()


def error_response(err: XRPCError, extra_headers: dict[str, str] | None = None) -> web.Response:
    """The JSON answer for an :class:`XRPCError`."""
    response = web.Response(status=err.status, body=orjson.dumps(err.payload()), content_type=JSON_ENCODING)
    if extra_headers:
        response.headers.update(extra_headers)
    if err.headers:
        response.headers.update(err.headers)
    return response


class XRPCRouter:
    """Collects a service's XRPC methods and builds its aiohttp application.

    ``lexicons`` (an ``atstack.core.lexicon.Lexicons``) turns on parameter coercion/validation and JSON
    input validation (``validate_output=True`` also checks handler output, answering 500 on mismatch).
    ``fallback`` receives calls to unregistered NSIDs (body unread) instead of the 501.
    """

    def __init__(
        self,
        service: str,
        *,
        version: str = __version__,
        lexicons: Lexicons | None = None,
        metrics: XRPCMetrics | None = None,
        global_rate_limits: Sequence[RouteRateLimit] = (),
        json_limit: int = DEFAULT_JSON_LIMIT,
        body_limit: int = DEFAULT_BODY_LIMIT,
        trust_forwarded: bool = False,
        validate_output: bool = False,
        fallback: Handler | None = None,
        health_check: HealthCheck | None = None,
    ) -> None:
        self.service = service
        self.version = version
        self.lexicons = LexiconHooks(lexicons) if lexicons is not None else None
        self.metrics = metrics if metrics is not None else XRPCMetrics(service, version)
        self.global_rate_limits = tuple(global_rate_limits)
        self.json_limit = json_limit
        self.body_limit = body_limit
        self.trust_forwarded = trust_forwarded
        self.validate_output = validate_output
        self.fallback = fallback
        self.health_check = health_check
        self.routes: dict[str, Route] = {}
        self._shutdown_hooks: list[Callable[[], Awaitable[None]]] = []

    # registration -------------------------------------------------------------------------------

    def add_route(self, route: Route) -> None:
        if route.nsid in self.routes:
            raise ValueError(f"{route.nsid} is already registered")
        if route.kind not in ("query", "procedure", "subscription"):
            raise ValueError(f"unknown method kind {route.kind!r}")
        declared = self.lexicons.method_type(route.nsid) if self.lexicons else None
        if declared is not None and declared != route.kind:
            raise ValueError(f"{route.nsid} is a {declared} in its lexicon, not a {route.kind}")
        self.routes[route.nsid] = route

    def query(
        self, nsid: str, *, auth: AuthHook | None = None, rate_limits: Sequence[RouteRateLimit] = ()
    ) -> Callable[[Handler], Handler]:
        """Register a GET method: ``@router.query("com.atproto.repo.getRecord")``."""

        def register(handler: Handler) -> Handler:
            self.add_route(Route(nsid, "query", handler, auth=auth, rate_limits=tuple(rate_limits)))
            return handler

        return register

    def procedure(
        self,
        nsid: str,
        *,
        input: str | None = _FROM_LEXICON,
        stream_input: bool = False,
        max_body: int | None = None,
        auth: AuthHook | None = None,
        rate_limits: Sequence[RouteRateLimit] = (),
    ) -> Callable[[Handler], Handler]:
        """Register a POST method.

        ``input`` is the accepted encoding (``"application/json"`` — parsed, ``"*/*"``, a CAR type, …) or
        ``None`` for a method without input; by default it is read from the lexicons, else JSON.
        ``stream_input=True`` leaves the body unread for :meth:`XRPCRequest.iter_body`. ``max_body``
        overrides the router's JSON or body limit.
        """

        def register(handler: Handler) -> Handler:
            encoding = input
            if encoding is _FROM_LEXICON:
                found = self.lexicons.input_encoding(nsid) if self.lexicons else UNKNOWN
                encoding = JSON_ENCODING if found is UNKNOWN else found
            route = Route(
                nsid,
                "procedure",
                handler,
                input=encoding,
                stream_input=stream_input,
                max_body=max_body,
                auth=auth,
                rate_limits=tuple(rate_limits),
            )
            self.add_route(route)
            return handler

        return register

    def subscription(self, nsid: str, *, auth: AuthHook | None = None) -> Callable[[Handler], Handler]:
        """Register an event stream; the handler upgrades ``req.request`` and returns the WebSocket."""

        def register(handler: Handler) -> Handler:
            self.add_route(Route(nsid, "subscription", handler, auth=auth))
            return handler

        return register

    def add_shutdown_hook(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run ``hook`` when the app shuts down, before connections are closed (e.g. close streams)."""
        self._shutdown_hooks.append(hook)

    # application --------------------------------------------------------------------------------

    def create_app(
        self, *, client_max_size: int | None = None, handler_args: dict[str, Any] | None = None
    ) -> web.Application:
        """The aiohttp application: XRPC dispatch, health, metrics, CORS, errors and access log.

        ``handler_args`` are aiohttp's per-connection server options (e.g. ``max_line_size``)."""
        limit = client_max_size or max(self.json_limit, self.body_limit)
        app = web.Application(
            middlewares=[self._middleware], client_max_size=limit, handler_args=handler_args
        )
        app.router.add_get("/xrpc/_health", self._health)
        app.router.add_get("/metrics", self.metrics.handle)
        app.router.add_route("*", "/xrpc/{nsid}", self._dispatch)
        app.on_response_prepare.append(add_cors_headers)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, app: web.Application) -> None:
        for hook in self._shutdown_hooks:
            try:
                await hook()
            except Exception:
                log.exception("shutdown hook failed")

    async def _health(self, request: web.Request) -> web.Response:
        if self.health_check is not None:
            try:
                await self.health_check()
            except Exception as exc:
                log.warning("health check failed: %s", exc)
                body = {"version": self.version, "error": "Service Unavailable"}
                return web.Response(status=503, body=orjson.dumps(body), content_type=JSON_ENCODING)
        return web.Response(body=orjson.dumps({"version": self.version}), content_type=JSON_ENCODING)

    def client_ip(self, request: web.Request) -> str | None:
        if self.trust_forwarded:
            forwarded = request.headers.get("X-Forwarded-For")
            if forwarded:
                return forwarded.split(",", 1)[0].strip()
        return request.remote

    # middleware: CORS preflight, errors, access log, metrics --------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        started = time.perf_counter()
        error_name: str | None = None
        if request.method == "OPTIONS":
            response: web.StreamResponse = preflight_response(request)
        else:
            try:
                response = await handler(request)
            except XRPCError as err:
                response, error_name = self._error(request, err), err.error
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                err = XRPCError(exc.status, message=exc.reason)
                response, error_name = self._error(request, err, dict(exc.headers)), err.error
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("unhandled error in %s %s", request.method, request.path)
                err = InternalServerError()
                response, error_name = self._error(request, err), err.error
        self._record(request, response.status, time.perf_counter() - started, error_name)
        return response

    def _error(
        self, request: web.Request, err: XRPCError, extra: dict[str, str] | None = None
    ) -> web.Response:
        if err.status >= 500 and not isinstance(err, InternalServerError):
            log.warning("%s %s: %s %s", request.method, request.path, err.error, err.message)
        headers = dict(extra) if extra else {}
        headers.pop("Content-Type", None)
        headers.pop("Content-Length", None)
        xrpc_request: XRPCRequest | None = request.get(_XRPC_REQUEST_KEY)
        if xrpc_request is not None:
            headers.update(xrpc_request.response_headers)
        return error_response(err, headers)

    def _record(self, request: web.Request, status: int, seconds: float, error: str | None) -> None:
        nsid = request.match_info.get("nsid")
        if nsid is None:
            info = request.match_info.route.resource
            label = info.canonical if info is not None else UNKNOWN_NSID
        else:
            label = nsid if nsid in self.routes else UNKNOWN_NSID
        self.metrics.observe_request(label, request.method, status, seconds)
        if access_log.isEnabledFor(logging.INFO):
            method, path = request.method, request.path
            fields: dict[str, Any] = {
                "method": method,
                "path": path,
                "nsid": nsid,
                "status": status,
                "ms": round(seconds * 1000, 2),
                "ip": request.remote,
            }
            if error is not None:
                fields["error"] = error
            # makeRecord + handle is Logger.info minus the caller lookup (a third of the cost of a line
            # that is written for every request, and whose source line is always this one).
            access_log.handle(
                access_log.makeRecord(
                    ACCESS_LOGGER,
                    logging.INFO,
                    __file__,
                    0,
                    "%s %s %d",
                    (method, path, status),
                    None,
                    extra=fields,
                )
            )

    # dispatch -----------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        nsid = request.match_info["nsid"]
        route = self.routes.get(nsid)
        if route is None and not _NSID_SHAPE.match(nsid):
            raise InvalidRequestError("invalid xrpc path")
        xrpc_request = XRPCRequest(request, nsid, self.client_ip(request), None)
        request[_XRPC_REQUEST_KEY] = xrpc_request
        if self.global_rate_limits:
            xrpc_request.response_headers.update(apply_rate_limits(self.global_rate_limits, xrpc_request))
        if route is None:
            if self.fallback is None:
                raise MethodNotImplementedError()
            xrpc_request.params = query_params(request)
            xrpc_request._body_limit = self.body_limit  # body left unread, for the fallback to stream on
            return await self._respond(xrpc_request, await self.fallback(xrpc_request), None)
        if route.kind == "subscription":
            return await self._dispatch_subscription(route, xrpc_request)
        expected = "POST" if route.kind == "procedure" else "GET"
        if request.method != expected and not (expected == "GET" and request.method == "HEAD"):
            raise InvalidRequestError(f"Incorrect HTTP method ({request.method}) expected {expected}")
        self._parse_params(route, xrpc_request)
        if route.auth is not None:
            xrpc_request.auth = await route.auth(xrpc_request)
        await self._read_input(route, xrpc_request)
        if route.rate_limits:
            xrpc_request.response_headers.update(apply_rate_limits(route.rate_limits, xrpc_request))
        result = await route.handler(xrpc_request)
        return await self._respond(xrpc_request, result, route)

    async def _dispatch_subscription(self, route: Route, xrpc_request: XRPCRequest) -> web.StreamResponse:
        request = xrpc_request.request
        if request.method != "GET":
            raise XRPCError(
                405, message=f"Method Not Allowed ({request.method}); use GET", headers={"Allow": "GET"}
            )
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise XRPCError(426, message="Upgrade Required: this is a WebSocket endpoint")
        self._parse_params(route, xrpc_request)
        if route.auth is not None:
            xrpc_request.auth = await route.auth(xrpc_request)
        result = await route.handler(xrpc_request)
        if not isinstance(result, web.StreamResponse):
            raise TypeError(f"subscription handler for {route.nsid} must return the WebSocketResponse")
        return result

    def _parse_params(self, route: Route, xrpc_request: XRPCRequest) -> None:
        raw = query_params(xrpc_request.request)
        if self.lexicons is not None:
            xrpc_request.params = self.lexicons.params(route.nsid, raw)
        else:
            xrpc_request.params = raw

    async def _read_input(self, route: Route, xrpc_request: XRPCRequest) -> None:
        request = xrpc_request.request
        body_present = has_body(request)
        if route.kind == "query" or route.input is None:
            if body_present:
                raise InvalidRequestError("A request body was provided when none was expected")
            return
        if not body_present and not (
            # An explicit empty binary body is a body (the blob spec allows empty blobs); empty JSON is not.
            route.input != JSON_ENCODING and request.headers.get("Content-Length") == "0"
        ):
            raise InvalidRequestError("A request body is expected but none was provided")
        mime = normalize_mime(request.headers.get("Content-Type"))
        if mime is None:
            raise InvalidRequestError("Request encoding (Content-Type) required but not provided")
        if not encoding_accepted(route.input, mime):
            raise InvalidRequestError(f"Wrong request encoding (Content-Type): {mime}")
        xrpc_request.encoding = mime
        is_json = mime == JSON_ENCODING
        limit = route.max_body or (self.json_limit if is_json else self.body_limit)
        declared = content_length(request)
        if declared is not None and declared > limit:
            raise XRPCError(413, message=f"request body of {declared} bytes exceeds {limit}")
        xrpc_request._body_limit = limit
        if route.stream_input:
            return
        raw = await xrpc_request.read_body()
        if is_json:
            xrpc_request.body = parse_json_object(raw)
            if self.lexicons is not None:
                xrpc_request._data = self.lexicons.input(route.nsid, xrpc_request.body)
        else:
            xrpc_request.body = raw

    async def _respond(
        self, xrpc_request: XRPCRequest, result: HandlerResult, route: Route | None
    ) -> web.StreamResponse:
        headers = xrpc_request.response_headers
        if result is None:
            response = web.Response(status=200)
        elif isinstance(result, dict):
            if route is not None and self.validate_output and self.lexicons is not None:
                self.lexicons.output(route.nsid, result)
            response = web.Response(body=json_bytes(result), content_type=JSON_ENCODING)
        elif isinstance(result, XRPCResponse):
            if isinstance(result.body, bytes | bytearray | memoryview):
                response = web.Response(status=result.status, body=bytes(result.body))
                response.headers["Content-Type"] = result.content_type
                response.headers.update(result.headers)
            else:
                return await self._stream(xrpc_request.request, result, headers)
        elif isinstance(result, web.StreamResponse):
            return result
        else:
            raise TypeError(f"handler returned {type(result).__name__}; expected dict, XRPCResponse or None")
        if headers:
            response.headers.update(headers)
        return response

    async def _stream(
        self, request: web.Request, result: XRPCResponse, extra: dict[str, str]
    ) -> web.StreamResponse:
        assert not isinstance(result.body, bytes | bytearray | memoryview)
        response = web.StreamResponse(status=result.status)
        response.headers["Content-Type"] = result.content_type
        response.headers.update(result.headers)
        response.headers.update(extra)
        iterator = aiter(result.body)
        # Pull the first chunk before sending headers, so a handler that fails early still gets a JSON error.
        try:
            first = await anext(iterator)
        except StopAsyncIteration:
            first = b""
        await response.prepare(request)
        try:
            if first:
                await response.write(first)
            async for chunk in iterator:
                await response.write(chunk)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            # Headers are out: the only honest signal left is a truncated body, so cut the connection.
            log.exception("streamed response for %s failed midway", request.path)
            if request.transport is not None:
                request.transport.abort()
        return response
