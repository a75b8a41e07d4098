# The one JSON encoder of every response body (res.json, JSON-seq records, server-sent events):
# compact, UTF-8 as it is, no NaN, bytes as text and sets/tuples as lists.
# Must not: import anything of gateway.app (response.py and sse.py both use it; sse must not
# import response, which loads it on first use).
from __future__ import annotations

from typing import Any

from gateway.jsoncodec import make_encoder


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray)):
        return obj.decode("utf-8", "replace")
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


# one encoder for every response (gateway.jsoncodec: without JSONEncoder.encode's set-up)
_encode = make_encoder(ensure_ascii=False, default=_json_default)


def dumps(obj: Any) -> bytes:
    """``obj`` as compact JSON text in UTF-8.

    Raises:
        ValueError: NaN or infinity; TypeError: a value JSON cannot carry.
    """
    return _encode(obj).encode()


def dumps_text(obj: Any) -> str:
    """``obj`` as compact JSON text (a str; see ``dumps``)."""
    return _encode(obj)
