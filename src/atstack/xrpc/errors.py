"""XRPC errors: the exception services raise and the JSON body it becomes.

Spec: atproto.com/specs/xrpc ("Error Responses"), checklist §8. An error response has status ≥ 400,
``Content-Type: application/json`` and body ``{"error": "<Name>", "message": "…"}``. The generic names per
status follow the TypeScript reference server (``@atproto/xrpc-server``); a lexicon-declared name (for
example ``RecordNotFound``) replaces the generic one while the status stays what the method chooses.

Two reference behaviours kept on purpose:

* a 500 never carries details: the body message is always "Internal Server Error", whatever the
  exception said (the details go to the log instead);
* a status the table does not know falls back by class, 4xx to ``InvalidRequest`` and 5xx to
  ``InternalServerError`` — the same mapping reference clients apply to such responses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = [
    "GENERIC_ERROR_NAMES",
    "AuthRequiredError",
    "ForbiddenError",
    "InternalServerError",
    "InvalidRequestError",
    "MethodNotImplementedError",
    "NotEnoughResourcesError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitExceededError",
    "UpstreamFailureError",
    "UpstreamTimeoutError",
    "XRPCError",
    "generic_error_name",
]

# status → (generic error name, default human message)
GENERIC_ERROR_NAMES: dict[int, tuple[str, str]] = {
    400: ("InvalidRequest", "Invalid Request"),
    401: ("AuthenticationRequired", "Authentication Required"),
    403: ("Forbidden", "Forbidden"),
    404: ("NotFound", "Not Found"),
    413: ("PayloadTooLarge", "Payload Too Large"),
    429: ("RateLimitExceeded", "Rate Limit Exceeded"),
    500: ("InternalServerError", "Internal Server Error"),
    501: ("MethodNotImplemented", "Method Not Implemented"),
    502: ("UpstreamFailure", "Upstream Failure"),
    503: ("NotEnoughResources", "Not Enough Resources"),
    504: ("UpstreamTimeout", "Upstream Timeout"),
}


def generic_error_name(status: int) -> tuple[str, str]:
    """The generic ``(name, message)`` for a status; unknown 4xx/5xx fall back to 400/500."""
    found = GENERIC_ERROR_NAMES.get(status)
    if found is not None:
        return found
    return GENERIC_ERROR_NAMES[400 if 400 <= status < 500 else 500]


class XRPCError(Exception):
    """An error answered to an XRPC caller as ``{"error", "message"}`` JSON with ``status``.

    ``XRPCError(400, "RecordNotFound", "Could not locate record")`` raises a lexicon-declared name;
    ``XRPCError(502)`` uses the generic name and message for the status. ``headers`` are added to the
    response (``WWW-Authenticate``, ``Retry-After``, rate-limit headers).
    """

    def __init__(
        self,
        status: int,
        error: str | None = None,
        message: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not 400 <= status < 600:
            # a non-error status here is a programming error; answering it would claim success
            status = 500
        generic_name, generic_message = generic_error_name(status)
        self.status: int = status
        self.error: str = error or generic_name
        self.message: str = message or generic_message
        self.headers: dict[str, str] = dict(headers) if headers else {}
        if status == 401:
            # the spec asks every 401 to carry a challenge, whichever name the method raised
            self.headers.setdefault("WWW-Authenticate", "Bearer")
        super().__init__(f"{self.status} {self.error}: {self.message}")

    def payload(self) -> dict[str, str]:
        """The JSON body; 500s never echo internal details."""
        if self.status == 500:
            return {"error": self.error, "message": GENERIC_ERROR_NAMES[500][1]}
        return {"error": self.error, "message": self.message}


class InvalidRequestError(XRPCError):
    """400: bad parameters or input (also the status of most lexicon-declared errors)."""

    def __init__(self, message: str | None = None, error: str | None = None) -> None:
        super().__init__(400, error, message)


class AuthRequiredError(XRPCError):
    """401, with the ``WWW-Authenticate`` challenge the spec asks for (``Bearer`` unless given)."""

    def __init__(
        self, message: str | None = None, error: str | None = None, *, www_authenticate: str = "Bearer"
    ) -> None:
        super().__init__(401, error, message, headers={"WWW-Authenticate": www_authenticate})


class ForbiddenError(XRPCError):
    """403: authenticated but not allowed."""

    def __init__(self, message: str | None = None, error: str | None = None) -> None:
        super().__init__(403, error, message)


class NotFoundError(XRPCError):
    """404: no such resource (lexicons usually declare a more precise name with 400 instead)."""

    def __init__(self, message: str | None = None, error: str | None = None) -> None:
        super().__init__(404, error, message)


class PayloadTooLargeError(XRPCError):
    """413: request body over the route's limit."""

    def __init__(self, message: str | None = None, error: str | None = None) -> None:
        super().__init__(413, error, message)


class RateLimitExceededError(XRPCError):
    """429, with ``Retry-After`` in whole seconds (rounded up) when known."""

    def __init__(
        self,
        message: str | None = None,
        error: str | None = None,
        *,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        all_headers = dict(headers) if headers else {}
        if retry_after is not None:
            all_headers["Retry-After"] = str(max(0, math.ceil(retry_after)))
        super().__init__(429, error, message, headers=all_headers)


class InternalServerError(XRPCError):
    """500: our fault; the message is logged, never sent."""

    def __init__(self, message: str | None = None, error: str | None = None) -> None:
        super().__init__(500, error, message)


class MethodNotImplementedError(XRPCError):
    """501: this service does not serve the NSID."""

    def __init__(self, message: str | None = None, error: str | None = None) -> None:
        super().__init__(501, error, message)


class UpstreamFailureError(XRPCError):
    """502: a service we called failed or answered nonsense."""

    def __init__(self, message: str | None = None, error: str | None = None) -> None:
        super().__init__(502, error, message)


class NotEnoughResourcesError(XRPCError):
    """503: overloaded or shutting down."""

    def __init__(self, message: str | None = None, error: str | None = None) -> None:
        super().__init__(503, error, message)


class UpstreamTimeoutError(XRPCError):
    """504: a service we called did not answer in time."""

    def __init__(self, message: str | None = None, error: str | None = None) -> None:
        super().__init__(504, error, message)
