"""The API key check every route and protocol that has one applies (HTTP and WebSocket)."""

from __future__ import annotations

import hmac

from starlette.requests import HTTPConnection


def authorised(connection: HTTPConnection, api_key: str | None) -> bool:
    """`Authorization: Bearer KEY` when the server has a key (compared in constant time)."""
    if api_key is None:
        return True
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    given = token.strip().encode() if scheme.lower() == "bearer" else b""
    return hmac.compare_digest(given, api_key.encode())
