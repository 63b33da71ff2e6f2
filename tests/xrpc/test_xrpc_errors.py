"""XRPC error names, statuses and bodies (checklist §8, reference server's table)."""

from __future__ import annotations

import pytest

from atstack.xrpc.errors import (
    GENERIC_ERROR_NAMES,
    AuthRequiredError,
    ForbiddenError,
    InternalServerError,
    InvalidRequestError,
    MethodNotImplementedError,
    NotEnoughResourcesError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitExceededError,
    UpstreamFailureError,
    UpstreamTimeoutError,
    XRPCError,
)

EXPECTED = {
    400: (InvalidRequestError, "InvalidRequest"),
    401: (AuthRequiredError, "AuthenticationRequired"),
    403: (ForbiddenError, "Forbidden"),
    404: (NotFoundError, "NotFound"),
    413: (PayloadTooLargeError, "PayloadTooLarge"),
    429: (RateLimitExceededError, "RateLimitExceeded"),
    500: (InternalServerError, "InternalServerError"),
    501: (MethodNotImplementedError, "MethodNotImplemented"),
    502: (UpstreamFailureError, "UpstreamFailure"),
    503: (NotEnoughResourcesError, "NotEnoughResources"),
    504: (UpstreamTimeoutError, "UpstreamTimeout"),
}


def test_generic_names_by_status() -> None:
    assert set(GENERIC_ERROR_NAMES) == set(EXPECTED)
    for status, (cls, name) in EXPECTED.items():
        err = cls()
        assert (err.status, err.error) == (status, name)
        assert err.payload() == {"error": name, "message": GENERIC_ERROR_NAMES[status][1]}
        assert XRPCError(status).error == name


def test_lexicon_declared_names_and_messages() -> None:
    err = XRPCError(400, "RecordNotFound", "Could not locate record")
    assert err.payload() == {"error": "RecordNotFound", "message": "Could not locate record"}
    assert InvalidRequestError("expired", "ExpiredToken").payload() == {
        "error": "ExpiredToken",
        "message": "expired",
    }


def test_500_never_leaks_details() -> None:
    assert InternalServerError("db password is hunter2").payload() == {
        "error": "InternalServerError",
        "message": "Internal Server Error",
    }


@pytest.mark.parametrize(
    ("status", "name"), [(405, "InvalidRequest"), (426, "InvalidRequest"), (599, "InternalServerError")]
)
def test_unknown_statuses_fall_back_by_class(status: int, name: str) -> None:
    assert XRPCError(status).error == name
    assert XRPCError(status).status == status


def test_non_error_status_becomes_500() -> None:
    assert XRPCError(200).status == 500


def test_challenge_and_retry_headers() -> None:
    assert AuthRequiredError().headers == {"WWW-Authenticate": "Bearer"}
    assert XRPCError(401, "InvalidToken").headers == {"WWW-Authenticate": "Bearer"}
    assert (
        AuthRequiredError(www_authenticate='DPoP error="use_dpop_nonce"')
        .headers["WWW-Authenticate"]
        .startswith("DPoP")
    )
    assert RateLimitExceededError(retry_after=12.2).headers == {"Retry-After": "13"}
