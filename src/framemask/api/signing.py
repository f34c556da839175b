"""Short-lived signed stream URLs, for clients that cannot send an Authorization header (`<video src>`).

The signature binds video, variant, expiry and the issuing token, so a URL grants exactly one
stream for a few minutes and is audited under the token that asked for it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode

__all__ = ["sign_stream", "signed_stream_query", "verify_stream"]


def sign_stream(key: bytes, video_id: str, variant: str, expires: int, token_id: int | None) -> str:
    message = f"{video_id}|{variant}|{expires}|{token_id if token_id is not None else ''}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def signed_stream_query(key: bytes, video_id: str, variant: str, seconds: int, token_id: int | None) -> str:
    expires = int(time.time()) + seconds
    signature = sign_stream(key, video_id, variant, expires, token_id)
    params = {"variant": variant, "expires": expires, "signature": signature}
    if token_id is not None:
        params["tid"] = token_id
    return urlencode(params)


def verify_stream(key: bytes, video_id: str, variant: str, expires: int, token_id: int | None, signature: str) -> bool:
    if expires < time.time():
        return False
    expected = sign_stream(key, video_id, variant, expires, token_id).encode()
    # bytes: compare_digest refuses non-ASCII str (a TypeError, i.e. a 500, for `signature=â`)
    return hmac.compare_digest(expected, signature.encode("utf-8", "surrogateescape"))
