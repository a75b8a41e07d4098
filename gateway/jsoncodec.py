# Compact JSON encoders without json.JSONEncoder.encode's per-call set-up: the one place that
# builds them, for response bodies (gateway.app.jsontext), Socket.IO packets (gateway.ws) and the
# JSON text of a virtual request's data (gateway.body.stream).
# Owns: calling the C encoder of the json module directly, and checking at import that it gives
# what JSONEncoder.encode gives (else JSONEncoder.encode is used, unchanged).
# Must not: import anything of the gateway (every layer may use it).
#
# Why: JSONEncoder.encode() builds a new C encoder on every call, and before that a closure and
# its defaults in iterencode(); for a small object (a JWR, {"hello": "world"}) that set-up costs
# more than the encoding itself (the encoder is also a garbage-collected object: more collections).
# The C encoder (json.encoder.c_make_encoder) takes the same arguments since Python 3.1; its
# `markers` dict (circular-reference detection) is the only state of one call, and we go without.
from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any

__all__ = ["make_encoder"]

try:
    from json.encoder import c_make_encoder as _c_make_encoder  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover  (a Python without the json module's C part)
    _c_make_encoder = None

# what the check at import encodes: every kind of value and both kinds of string
_PROBE: Any = [{"a": 1, "b": [1.5, -2, True, False, None], "\u00e9": '\u4e2d"\\\n'}, "x", 10**20]


def make_encoder(
    *, ensure_ascii: bool, default: Callable[[Any], Any] | None = None, allow_nan: bool = False
) -> Callable[[Any], str]:
    """A function ``obj -> str`` that gives what ``json.JSONEncoder(separators=(",", ":"),
    ensure_ascii=ensure_ascii, allow_nan=allow_nan, default=default).encode(obj)`` gives, errors
    included (ValueError for circular references, and for NaN and infinities unless
    ``allow_nan``; TypeError for what JSON cannot carry and ``default`` does not convert).

    Args:
        ensure_ascii: escape every non-ASCII character (``\\uXXXX``).
        default: converts values JSON cannot carry, or raises TypeError; None: TypeError.
        allow_nan: write NaN and the infinities as ``NaN``, ``Infinity``, ``-Infinity``
            (JavaScript's literals, not JSON) instead of raising ValueError.

    Returns:
        The encoding function.
    """
    reference = json.JSONEncoder(
        separators=(",", ":"), ensure_ascii=ensure_ascii, allow_nan=allow_nan, default=default
    )
    if _c_make_encoder is None:  # pragma: no cover
        return reference.encode
    escape = encode_basestring_ascii if ensure_ascii else encode_basestring
    # one C encoder for every call, without circular-reference markers (a dict per call and two
    # operations on it per container); a cycle then ends in RecursionError, and the call is
    # made again with the reference encoder, whose markers give JSONEncoder's ValueError (a
    # value that is merely too deep raises RecursionError there too)
    shared = _c_make_encoder(
        None, reference.default, escape, None, ":", ",", False, False, allow_nan
    )
    reference_encode = reference.encode

    def encode(obj: Any) -> str:
        if type(obj) is str:  # JSONEncoder.encode's own shortcut: the C encoder wants a container
            return escape(obj)
        try:
            return "".join(shared(obj, 0))
        except RecursionError:
            return reference_encode(obj)

    try:
        same = encode(_PROBE) == reference.encode(_PROBE)
    except Exception:  # pragma: no cover  (a C encoder with other arguments)
        same = False
    return encode if same else reference.encode  # pragma: no branch
