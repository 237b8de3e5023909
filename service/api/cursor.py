"""Opaque, tamper-checked, expiring pagination cursors for keyset listings.

A cursor is `base64url(payload).base64url(HMAC-SHA256(secret, payload))`, where the payload
is the JSON array `[version, listing, after_id, issued_at]`: the listing it belongs to (so a
cursor of one listing is refused by another), the last id of the page it follows, and when it
was issued (Unix seconds, rounded down to a tenth of the lifetime, at most ISSUE_STEP_S). A
cursor is accepted for `ttl_s` seconds after that. The rounding makes the same page, asked again within a few minutes, the
same bytes: its ETag holds and a conditional request gets its 304.

The secret is PAPERS_CURSOR_SECRET when set; else one generated once and stored in the
database (table `api_secrets`), so every worker and every restart agrees on it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from typing import Final

import msgspec

from service import db

VERSION = 1
ISSUE_STEP_S: Final = 300  # issue times are rounded down to at most this many seconds
SECRET_NAME = "cursor"  # noqa: S105 - the row name in api_secrets, not a secret


class Payload(msgspec.Struct, array_like=True, frozen=True):
    """What a cursor says: which listing, after which id, issued when."""

    version: int
    listing: str
    after: str
    issued_at: int


class CursorError(ValueError):
    """A cursor that cannot be used; the message says why, for the client."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    """Signs and checks cursors with one secret and lifetime."""

    def __init__(self, secret: bytes, ttl_s: int) -> None:
        if len(secret) < 32:
            raise ValueError("a cursor secret needs at least 32 bytes")
        self._secret = secret
        self.ttl_s = ttl_s
        self._step = max(1, min(ISSUE_STEP_S, ttl_s // 10))

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()

    def encode(self, listing: str, after: str, *, now: float | None = None) -> str:
        """A cursor for the page after `after` in `listing`, issued now (rounded down)."""
        issued = int(time.time() if now is None else now) // self._step * self._step
        payload = msgspec.json.encode(Payload(VERSION, listing, after, issued))
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def decode(self, token: str, listing: str, *, now: float | None = None) -> str:
        """The `after` id of a cursor issued by us for `listing` and not expired."""
        body, _, signature = token.partition(".")
        try:
            payload, mac = _unb64(body), _unb64(signature)
        except (binascii.Error, ValueError):
            raise CursorError("not a cursor returned by this API") from None
        if not hmac.compare_digest(mac, self._sign(payload)):
            raise CursorError("not a cursor returned by this API (or it was altered)")
        try:
            cursor = msgspec.json.decode(payload, type=Payload)
        except msgspec.DecodeError:  # signed by us, so only an older format gets here
            raise CursorError("a cursor from an older version of this API") from None
        if cursor.version != VERSION:
            raise CursorError("a cursor from another version of this API")
        if cursor.listing != listing:
            raise CursorError("this cursor belongs to another listing")
        age = (time.time() if now is None else now) - cursor.issued_at
        if age > self.ttl_s:
            raise CursorError(
                f"the cursor expired: cursors are valid for {self.ttl_s} seconds; "
                "start again from the first page"
            )
        return cursor.after


async def cursor_codec(pool: db.Pool, secret: str | None, ttl_s: int) -> CursorCodec:
    """The codec for the app: `secret` (PAPERS_CURSOR_SECRET) or the database's shared one."""
    if secret is not None:
        return CursorCodec(secret.encode(), ttl_s)
    async with pool.acquire() as conn:
        stored = await db.shared_secret(conn, SECRET_NAME, secrets.token_bytes(32))
    return CursorCodec(stored, ttl_s)
