# Owns: reading chunked request bodies (RFC 9112 7.1) for h11, in place of h11's own reader, which
# takes any bytes after a chunk size's ';' (bare CR, NUL), bare LF and obs-fold in trailers and a
# lone LF as the body's end ("0\r\n\n"): framing a proxy in front may read otherwise (smuggling).
# Must not: know sockets or the session; it reads h11's ReceiveBuffer only through what h11's own
# readers use (maybe_extract_next_line, maybe_extract_at_most, len, bytes).
#
# Theory of operation: SIZE (a chunk-size line through its CRLF) -> DATA (up to `_left` bytes
# handed out as h11.Data as they arrive) -> CRLF (exactly b"\r\n" after the data, maybe split
# across reads) -> SIZE ...; a zero size moves to TRAILER (field lines until an empty line),
# which ends in h11.EndOfMessage. h11 calls the reader, and moves its own state on what it returns.
from __future__ import annotations

import re
from typing import TYPE_CHECKING, NoReturn

import h11

from gateway.errors import RemoteProtocolError as ProtocolError  # every error here is the peer's

if TYPE_CHECKING:
    from h11._receivebuffer import ReceiveBuffer

__all__ = ["ChunkedReader", "MAX_CHUNK_BYTES"]

# Larger chunk sizes wrap around in 64-bit parsers upstream: a classic smuggling shape, and no
# body of ours is ever that large.
MAX_CHUNK_BYTES = (1 << 63) - 1

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
# chunk-size [ chunk-ext ] CRLF, chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ).
# Stricter than RFC 9112 in one place, on purpose: no whitespace between the size and the first
# ';' nor after a size without extensions (some parsers end the size at a space, others reject it).
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,20})(?:;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|"
    + _QUOTED + rb"))?[ \t]*)*\r\n"
)
# field-name ":" OWS field-value OWS CRLF (RFC 9110 5.5: visible ASCII, obs-text, inner SP/HTAB)
_FIELD_LINE = re.compile(
    rb"(" + _TOKEN + rb"):[ \t]*((?:[\x21-\x7e\x80-\xff](?:[ \t]*[\x21-\x7e\x80-\xff])*)?)"
    rb"[ \t]*\r\n"
)
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class ChunkedReader:
    """An h11 body reader for ``Transfer-Encoding: chunked`` that rejects what RFC 9112 forbids.

    Args:
        max_line_bytes: the longest chunk-size line (with its extensions) to wait for.
        max_trailer_bytes: the largest trailer section (431 beyond).
        max_trailer_fields: the most trailer fields (431 beyond).

    Raises (from the call, through h11's next_event):
        ProtocolError: 400 for broken framing (malformed size line, size over 2**63-1, data not
            followed by CRLF, bare CR or LF, obs-fold or a malformed trailer field, the peer
            closing mid-body), 431 for a trailer section over its limits.
    """

    __slots__ = ("_left", "_crlf", "_fields", "_trailer_bytes", "_max_line", "_max_trailer",
                 "_max_fields")

    def __init__(self, max_line_bytes: int, max_trailer_bytes: int,
                 max_trailer_fields: int) -> None:
        self._left = 0  # data bytes of the current chunk still to come
        self._crlf = b""  # what is still due of the CRLF that ends a chunk's data
        self._fields: list[tuple[bytes, bytes]] | None = None  # trailer fields, once in TRAILER
        self._trailer_bytes = 0
        self._max_line = max_line_bytes
        self._max_trailer = max_trailer_bytes
        self._max_fields = max_trailer_fields

    def __call__(self, buf: ReceiveBuffer) -> h11.Data | h11.EndOfMessage | None:
        if self._fields is not None:
            return self._read_trailer(buf)
        if self._crlf:
            got = buf.maybe_extract_at_most(len(self._crlf))
            if got is None:
                return None
            if not self._crlf.startswith(got):
                raise ProtocolError(_chunk_end_error(self._crlf, got))
            self._crlf = self._crlf[len(got):]
            if self._crlf:
                return None
        chunk_start = False
        if not self._left:
            line = buf.maybe_extract_next_line()
            if line is None:
                self._check_partial_line(buf, self._max_line, "Chunk size line too long", 400)
                return None
            m = _CHUNK_LINE.fullmatch(line)
            if m is None:
                raise ProtocolError(_line_error(line, "Malformed chunk size line"))
            size = int(m.group(1), 16)
            if size > MAX_CHUNK_BYTES:
                raise ProtocolError("Chunk size too large")
            if not size:
                self._fields = []
                return self._read_trailer(buf)
            self._left = size
            chunk_start = True
        data = buf.maybe_extract_at_most(self._left)
        if data is None:
            return None
        left = self._left = self._left - len(data)
        if not left:
            self._crlf = b"\r\n"
        # a bytearray, as h11's own reader hands out (its annotation says bytes); the server
        # makes the one bytes copy
        return h11.Data(data=data, chunk_start=chunk_start,  # type: ignore[arg-type]
                        chunk_end=not left)

    def read_eof(self) -> NoReturn:
        """h11 calls this when the peer closes with nothing buffered: the body is incomplete."""
        raise ProtocolError("Incomplete chunked body: the peer closed the connection")

    def _read_trailer(self, buf: ReceiveBuffer) -> h11.EndOfMessage | None:
        fields = self._fields
        assert fields is not None
        while True:
            line = buf.maybe_extract_next_line()
            if line is None:
                self._check_partial_line(buf, self._max_trailer - self._trailer_bytes,
                                         "Trailer section too large", 431)
                return None
            if len(line) == 2:  # the empty line (CRLF) that ends the body
                return h11.EndOfMessage(headers=fields)
            self._trailer_bytes += len(line)
            if self._trailer_bytes > self._max_trailer:
                raise ProtocolError("Trailer section too large", 431)
            m = _FIELD_LINE.fullmatch(line)
            if m is None:
                raise ProtocolError(_line_error(line, "Malformed trailer field"))
            fields.append((m.group(1), m.group(2)))
            if len(fields) > self._max_fields:
                raise ProtocolError("Too many trailer fields", 431)

    @staticmethod
    def _check_partial_line(buf: ReceiveBuffer, room: int, too_long: str, status: int) -> None:
        # No CRLF anywhere in what is buffered: all of it is one unfinished line. Judge it now
        # rather than wait (for a timeout) for a CRLF: an LF in it is already a bare LF.
        if not buf:
            return
        if len(buf) > room:
            raise ProtocolError(too_long, status)
        if b"\n" in bytes(buf):
            raise ProtocolError("Bare LF in chunked body (lines must end with CRLF)")


def _line_error(line: bytes | bytearray, otherwise: str) -> str:
    """Why a size or trailer line (ending in CRLF) failed its grammar, for the 400's text."""
    inner = line[:-2]
    if b"\n" in inner:
        return "Bare LF in chunked body (lines must end with CRLF)"
    if b"\r" in inner:
        return "Bare CR in chunked body"
    if inner[:1] in (b" ", b"\t"):
        return "Obsolete line folding (obs-fold) in chunked trailer"
    if _CONTROL.search(inner) is not None:
        return "Control character in chunked body"
    return otherwise


def _chunk_end_error(due: bytes, got: bytes | bytearray) -> str:
    if due == b"\r\n" and got[:1] == b"\n":
        return "Bare LF in chunked body (chunk data must end with CRLF)"
    return "Chunk data not followed by CRLF (wrong chunk size?)"
