"""Who may see the status page's details, for every face.

The health view's token (``HEALTH_TOKEN``) is entered once into the page's form, compared
in constant time, and kept in a cookie signed by the framework (Django's signed cookies,
itsdangerous for Flask) for :data:`MAX_AGE` seconds. The cookie holds a keyed digest of the
token, never the token: a cookie stolen from a browser does not reveal it, and a new token
makes every old cookie worthless. Wrong tokens are counted per client address
(:mod:`pa_dbhealth.core.sign_in_limit`). The page's responses are never cached nor framed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from pa_dbhealth.core.options import token_text
from pa_dbhealth.core.sign_in_limit import SignInAttempts

COOKIE = "pa_dbhealth_page"
SALT = "pa_dbhealth.page"  # the signature's namespace: no other signed value passes for it
MAX_AGE = 8 * 3600  # seconds a sign-in lasts

# Never stored, never framed (clickjacking on the kill button), no script, forms only to
# the page itself.
HEADERS = {
    "Cache-Control": "max-age=0, no-cache, no-store, must-revalidate, private",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


def token_matches(given: str | None, token: str | None) -> bool:
    """Whether ``given`` (typed into the form, or a ``Bearer`` header) is the configured
    ``token`` (none configured: nothing is), both without surrounding spaces and newlines
    (``options.token_text``), compared in constant time."""
    if not token or not given:
        return False
    return hmac.compare_digest(token_text(given).encode(), token_text(token).encode())


def attempt(
    given: str | None, token: str | None, attempts: SignInAttempts, address: str
) -> tuple[bool, int | None]:
    """A sign-in with ``given`` (the page's form, a health view's ``Bearer``) from client
    ``address``: ``(granted, wait)``. An address that sent too many wrong tokens waits
    ``wait`` seconds, its token not even compared; a wrong one is counted, a right one
    clears the count. Without a configured token nothing is granted nor counted."""
    if not token:
        return False, None
    wait = attempts.wait(address)
    if wait is not None:
        return False, wait
    if token_matches(given, token):
        attempts.succeeded(address)
        return True, None
    attempts.failed(address)
    return False, None


def bearer(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, given = authorization.partition(" ")
    return given if scheme.lower() == "bearer" else None


def grant(token: str) -> str:
    """What the signed cookie keeps once ``token`` was entered: a digest keyed by it."""
    return hmac.new(token.encode(), SALT.encode(), hashlib.sha256).hexdigest()


def granted(kept: object, token: str | None) -> bool:
    """Whether a cookie's (already verified) value was granted for the current ``token``."""
    if not token or not isinstance(kept, str):
        return False
    return hmac.compare_digest(kept.encode(), grant(token).encode())


def new_csrf_token() -> str:
    """A fresh per-browser CSRF token (the Flask face keeps it in its signed cookie)."""
    return secrets.token_urlsafe(32)
