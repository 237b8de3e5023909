"""Opaque pagination cursors."""

from __future__ import annotations

import base64
import binascii

import msgspec


class Cursor(msgspec.Struct, frozen=True):
    """Where the next page starts: after this paper id."""

    after: str


def encode_cursor(after: str) -> str:
    """An opaque, URL-safe cursor."""
    return base64.urlsafe_b64encode(msgspec.json.encode(Cursor(after))).decode().rstrip("=")


def decode_cursor(token: str) -> Cursor:
    """The cursor behind a token; ValueError when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        return msgspec.json.decode(raw, type=Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError) as error:
        raise ValueError("not a cursor returned by this API") from error
