"""Standard Webhooks signatures (https://www.standardwebhooks.com), as slotgate verifies them:
``v1,`` + base64(HMAC-SHA256(key, "<id>.<timestamp>.<body>")), the key being the base64 after
``whsec_`` in the shared secret."""

import base64
import hashlib
import hmac


def key_of(secret: str) -> bytes | None:
    """The signing key in a ``whsec_`` secret, or None when it is not one."""
    if not secret.startswith("whsec_"):
        return None
    try:
        key = base64.b64decode(secret[len("whsec_") :], validate=True)
    except ValueError:
        return None
    return key or None


def sign(key: bytes, message_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` header value for this message."""
    signed = f"{message_id}.{timestamp}.{body}".encode()
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()
