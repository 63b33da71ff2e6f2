"""CORS the way the reference PDS answers it: any origin, preflight answered by the server itself.

The reference mounts the ``cors`` Express middleware with its defaults and a one-day ``maxAge``: every
response carries ``Access-Control-Allow-Origin: *``; every ``OPTIONS`` request is answered 204 with the
allowed methods, the requested headers echoed back, and ``Access-Control-Max-Age: 86400``. We also expose
the headers browser clients need to read (rate limits, ``atproto-*``), which the reference adds piecemeal.
"""

from __future__ import annotations

from aiohttp import web

__all__ = ["EXPOSED_HEADERS", "add_cors_headers", "preflight_response"]

ALLOWED_METHODS = "GET,HEAD,PUT,PATCH,POST,DELETE"
MAX_AGE = "86400"
EXPOSED_HEADERS = ", ".join(
    (
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "RateLimit-Policy",
        "Retry-After",
        "WWW-Authenticate",
        "DPoP-Nonce",
        "atproto-repo-rev",
        "atproto-content-labelers",
        "atproto-proxy",
    )
)


def preflight_response(request: web.Request) -> web.Response:
    """The 204 answer to any ``OPTIONS`` request."""
    headers = {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Max-Age": MAX_AGE,
        "Vary": "Access-Control-Request-Headers",
    }
    requested = request.headers.get("Access-Control-Request-Headers")
    if requested:
        headers["Access-Control-Allow-Headers"] = requested
    return web.Response(status=204, headers=headers)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: runs for every response, errors and aiohttp's own 404s included."""
    headers = response.headers
    if "Access-Control-Allow-Origin" not in headers:
        headers["Access-Control-Allow-Origin"] = "*"
    if "Access-Control-Expose-Headers" not in headers:
        headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
