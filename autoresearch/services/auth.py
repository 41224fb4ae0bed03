"""API tokens: made here, shown once, stored as a sha256 only. Tokens carry 256 random bits, so a plain
hash (no salt, no stretching) is enough: nobody can guess one to match."""

from __future__ import annotations

import hashlib
import secrets

from autoresearch.domain.model import ApiToken, Scope
from autoresearch.services.store import Store

TOKEN_PREFIX = "ar_"
_SHOWN = 10  # characters of a token kept to tell tokens apart in listings


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(store: Store, *, name: str, scope: Scope) -> tuple[str, ApiToken]:
    """A new token: the secret (shown to its owner once, never stored) and its record."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return secret, store.add_token(
        name=name, scope=scope, token_hash=hash_token(secret), prefix=secret[:_SHOWN]
    )


def authenticate(store: Store, token: str) -> ApiToken | None:
    """The live token this secret belongs to, or None (unknown, malformed or revoked)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    return store.token_by_hash(hash_token(token))
