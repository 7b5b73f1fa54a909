"""API keys: generated at random, kept only as SHA-256 hashes, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

from service.core.config import ApiKey

KEY_PREFIX = "cxt_"


def generate_key() -> str:
    """A new random key (256 bits): high entropy, so a fast hash is enough to store it."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The hex SHA-256 of ``key``: what the settings hold."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def find_key(presented: str, keys: Sequence[ApiKey]) -> ApiKey | None:
    """The configured key matching ``presented``, checking every key in constant time."""
    digest = hash_key(presented)
    found = None
    for key in keys:
        # No early exit: the time taken does not depend on which key (if any) matched.
        if hmac.compare_digest(digest, key.sha256):
            found = key
    return found


def has_scope(key: ApiKey, scope: str) -> bool:
    """``admin`` holds every scope."""
    return scope in key.scopes or "admin" in key.scopes
