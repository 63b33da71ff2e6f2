"""Password hashing: scrypt (N=16384, r=8, p=1, 64-byte key), stored as ``<salt hex>:<hash hex>``.

The parameters and storage format are those of the reference PDS (Node's ``crypto.scrypt`` defaults, the
salt's hex text used as the salt bytes), so an account table moved between implementations keeps working.
Hashing costs ~16 MiB and tens of milliseconds: callers run these functions in a worker thread. At most
:data:`MAX_CONCURRENT_HASHES` hashes run at once, whatever the number of threads asking: more would not finish
sooner on a CPU-bound job, and each holds 16 MiB.

Those 16 MiB buffers must also go back to the operating system once a hash is done. glibc serves a freed
``mmap``-sized block's successors from the heap of the thread's arena (its mmap threshold grows to the size
of the largest block freed), and every worker thread has its own arena, so each thread that ever hashed kept
16 MiB: measured with ``atstack bench pds``, creating 100 accounts left the PDS at ~160 MiB RSS instead of
~62 MiB. :func:`_fix_mmap_threshold` pins glibc's threshold at 1 MiB (its dynamic growth off), so blocks
that large are always mapped and unmapped on free; elsewhere this is a no-op.
"""

from __future__ import annotations

import ctypes
import hashlib
import hmac
import secrets
import sys
import threading

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
MAX_CONCURRENT_HASHES = 2
_HASHING = threading.BoundedSemaphore(MAX_CONCURRENT_HASHES)
_M_MMAP_THRESHOLD = -3  # mallopt parameter number in glibc's malloc.h


def _fix_mmap_threshold(threshold: int = 1 << 20) -> bool:
    """Pin glibc's mmap threshold (see the module docstring); False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        process = ctypes.CDLL(None)  # the symbols already loaded, the C library's among them
        return bool(process.mallopt(_M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):  # a C library without mallopt
        return False


_fix_mmap_threshold()


def _scrypt(password: str, salt: str) -> str:
    with _HASHING:
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
