# The handshake request of a WebSocket keeps its headers packed in one bytes object for the
# socket's life; the request API must not see a difference.
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.app.request import PackedHeaders

# what the parser lets through: token names, values of HTAB, SP, visible and obs-text bytes
_TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
_VCHAR = bytes([9, *range(0x20, 0x7F), *range(0x80, 0x100)])
_token = st.lists(st.sampled_from(_TCHAR), min_size=1, max_size=20).map(bytes)
_value = st.lists(st.sampled_from(_VCHAR), max_size=60).map(bytes)


@given(st.lists(st.tuples(_token, _value), max_size=12))
def test_packed_headers_iterate_as_the_pairs_they_were_given(pairs) -> None:  # type: ignore[no-untyped-def]
    assert list(PackedHeaders(pairs)) == pairs


def test_empty_and_single() -> None:
    assert list(PackedHeaders([])) == []
    assert list(PackedHeaders([(b"host", b"")])) == [(b"host", b"")]
    assert list(PackedHeaders([(b"a", b"1"), (b"b", b"x: y")])) == [(b"a", b"1"), (b"b", b"x: y")]
