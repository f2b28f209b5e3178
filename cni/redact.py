"""Redaction of network configs before they are logged. Pure.

A netconf reaches the logs only through :func:`netconf_for_log`. The rule (docs/cni.md
"Logging"), applied at every depth of the JSON, IPAM sub-config included:

1. the value of a key whose lower-cased name contains one of :data:`SECRET_KEY_PARTS`
   (``password``, ``token``, ``secret``, ``key``, ``credential``, ``auth`` ...) is replaced
   whole, whatever its type;
2. the top-level ``args`` object is replaced whole: runtimes put arbitrary pod data there
   (labels, annotations, and for some IPAMs tokens);
3. a string that looks like a secret is replaced: a PEM block, a JSON Web Token, or a bearer /
   basic credential; a URL keeps its scheme, host and path but loses ``user:password@``.

Everything else (names, deviceIDs, VLANs, subnets, routes) is kept: that is what a log reader
needs. Redaction can only hide too much, never too little, for the keys above; a secret stored
under an innocent key with an innocent-looking value is not recognisable and is not hidden,
which is why the netconf is logged at debug level only.
"""

from __future__ import annotations

import json
import re
from typing import Any

REDACTED = "<redacted>"
SECRET_KEY_PARTS = (
    "password", "passwd", "passphrase", "secret", "token", "key", "credential", "auth",
    "cookie", "private", "signature",
)
WHOLE_KEYS_AT_TOP = frozenset({"args"})
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]+-----")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}")
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def secret_key(name: str) -> bool:
    """Whether a key's value is hidden whole (rule 1)."""
    lowered = name.lower()
    return any(part in lowered for part in SECRET_KEY_PARTS)


def redact_string(value: str) -> str:
    """Rule 3 for one string."""
    if _PEM.search(value) or _JWT.search(value) or _AUTH_SCHEME.search(value):
        return REDACTED
    return _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", value)


def redact(value: Any, *, top: bool = True) -> Any:
    """A copy of a decoded JSON value with secrets replaced by :data:`REDACTED`."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            hide = secret_key(str(key)) or (top and key in WHOLE_KEYS_AT_TOP)
            out[key] = REDACTED if hide else redact(item, top=False)
        return out
    if isinstance(value, list):
        return [redact(item, top=False) for item in value]
    if isinstance(value, str):
        return redact_string(value)
    return value


def netconf_for_log(raw: bytes) -> str:
    """The stdin config as one JSON line with secrets redacted (never the raw bytes)."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return f"<undecodable config, {len(raw)} bytes>"
    return json.dumps(redact(obj), sort_keys=True)
