"""Password hashing: scrypt (N=16384, r=8, p=1, 64-byte key), stored as ``<salt hex>:<hash hex>``.

The parameters and storage format are those of the reference PDS (Node's ``crypto.scrypt`` defaults, the
salt's hex text used as the salt bytes), so an account table moved between implementations keeps working.
Hashing costs ~16 MiB and tens of milliseconds: callers run these functions in a worker thread.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = [
    "NEW_PASSWORD_MAX_LENGTH",
    "OLD_PASSWORD_MAX_LENGTH",
    "generate_app_password",
    "hash_app_password",
    "hash_password",
    "is_app_password_shape",
    "verify_password",
]

OLD_PASSWORD_MAX_LENGTH = 512
NEW_PASSWORD_MAX_LENGTH = 256
_APP_PASSWORD_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def _scrypt(password: str, salt: str) -> str:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt.encode("ascii"),
        n=16384,
        r=8,
        p=1,
        maxmem=64 * 1024 * 1024,
        dklen=64,
    ).hex()


def hash_password(password: str) -> str:
    salt = secrets.token_hex(16)
    return f"{salt}:{_scrypt(password, salt)}"


def verify_password(password: str, stored: str) -> bool:
    salt, _, expected = stored.partition(":")
    if not salt or not expected:
        return False
    return hmac.compare_digest(_scrypt(password, salt), expected)


def hash_app_password(did: str, password: str) -> str:
    # A per-account deterministic salt, as the reference does for app passwords.
    salt = hashlib.sha256(did.encode()).digest()[:16].hex()
    return f"{salt}:{_scrypt(password, salt)}"


def generate_app_password() -> str:
    """``xxxx-xxxx-xxxx-xxxx`` from a base32 alphabet (80 random bits)."""
    chars = "".join(secrets.choice(_APP_PASSWORD_ALPHABET) for _ in range(16))
    return "-".join(chars[i : i + 4] for i in range(0, 16, 4))


def is_app_password_shape(password: str) -> bool:
    parts = password.split("-")
    return len(parts) == 4 and all(len(p) == 4 and p.isalnum() for p in parts)
