# Owns: reading chunked request bodies (RFC 9112 7.1) from the raw bytes after the head, in place
# of h11's own reader, which takes any bytes after a chunk size's ';' (bare CR, NUL), bare LF and
# obs-fold in trailers and a lone LF as the body's end ("0\r\n\n"): framing a proxy in front may
# read otherwise (smuggling). It gives the events h11 would (Data, EndOfMessage: those of
# gateway.http.events), and refuses the framing fields in a trailer that h11 refuses.
# Must not: know sockets or the session, or import h11 (gateway.http.connection hands it the
# bytes h11 buffered after the head, through h11's public trailing_data, and every later read).
#
# Theory of operation: SIZE (a chunk-size line through its CRLF) -> DATA (up to `_left` bytes
# handed out as Data as they arrive) -> CRLF (exactly b"\r\n" after the data, maybe split
# across reads) -> SIZE ...; a zero size moves to TRAILER (field lines until an empty line),
# which ends in EndOfMessage; the bytes after it (a pipelined request) stay in the buffer.
from __future__ import annotations

import re
from typing import Any

from gateway.errors import RemoteProtocolError as ProtocolError  # every error here is the peer's
from gateway.http.events import NEED_DATA, PAUSED, ConnectionClosed, Data, EndOfMessage

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
    rb"([0-9A-Fa-f]{1,20})(?:;[ \t]*"
    + _TOKEN
    + rb"(?:[ \t]*=[ \t]*(?:"
    + _TOKEN
    + rb"|"
    + _QUOTED
    + rb"))?[ \t]*)*\r\n"
)
# field-name ":" OWS field-value OWS CRLF (RFC 9110 5.5: visible ASCII, obs-text, inner SP/HTAB)
_FIELD_LINE = re.compile(
    rb"(" + _TOKEN + rb"):[ \t]*((?:[\x21-\x7e\x80-\xff](?:[ \t]*[\x21-\x7e\x80-\xff])*)?)"
    rb"[ \t]*\r\n"
)
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# h11's bound on a Content-Length's digits (h11._headers.CONTENT_LENGTH_MAX_DIGITS)
_MAX_LENGTH_DIGITS = 20


class ChunkedReader:
    """A ``Transfer-Encoding: chunked`` body parser that rejects what RFC 9112 forbids: bytes
    in (``receive_data``), the body events h11 would give out (``next_event``).

    Args:
        max_line_bytes: the longest chunk-size line (with its extensions) to wait for.
        max_trailer_bytes: the largest trailer section (431 beyond).
        max_trailer_fields: the most trailer fields (431 beyond).
        data: the bytes already received after the request head.

    Raises (from next_event):
        ProtocolError: 400 for broken framing (malformed size line, size over 2**63-1, data not
            followed by CRLF, bare CR or LF, obs-fold or a malformed trailer field, a framing
            field h11 refuses in the trailer, the peer closing mid-body), 431 for a trailer
            section over its limits.
    """

    __slots__ = (
        "_left",
        "_crlf",
        "_fields",
        "_trailer_bytes",
        "_max_line",
        "_max_trailer",
        "_max_fields",
        "_buf",
        "_searched",
        "_closed",
        "done",
    )

    def __init__(
        self,
        max_line_bytes: int,
        max_trailer_bytes: int,
        max_trailer_fields: int,
        data: bytes | bytearray = b"",
    ) -> None:
        # the bytes received and not yet parsed; never more than a chunk-size or trailer line
        # within its limit plus one read (data is handed out as it arrives)
        self._buf = bytearray(data)
        self._searched = 0  # how much of _buf is known to hold no CRLF (byte-by-byte feeds)
        self._closed = False
        self.done = False  # the body's end (EndOfMessage) was handed out
        self._left = 0  # data bytes of the current chunk still to come
        self._crlf = b""  # what is still due of the CRLF that ends a chunk's data
        self._fields: list[tuple[bytes, bytes]] | None = None  # trailer fields, once in TRAILER
        self._trailer_bytes = 0
        self._max_line = max_line_bytes
        self._max_trailer = max_trailer_bytes
        self._max_fields = max_trailer_fields

    # -- the buffer -------------------------------------------------------------------------
    def receive_data(self, data: bytes | bytearray) -> None:
        """Feed bytes from the peer (b"" for the end of the stream)."""
        if data:
            self._buf += data
        else:
            self._closed = True

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """The bytes after the body's end (a pipelined request), and whether the peer closed
        (as h11's ``Connection.trailing_data``)."""
        return bytes(self._buf), self._closed

    def _line(self) -> bytearray | None:
        """The next line through its CRLF, or None while it is incomplete."""
        buf = self._buf
        i = buf.find(b"\r\n", max(0, self._searched - 1))
        if i < 0:
            self._searched = len(buf)
            return None
        self._searched = 0
        line = buf[: i + 2]
        del buf[: i + 2]  # from the front of a bytearray: no copy of the rest
        return line

    def _at_most(self, n: int) -> bytearray | None:
        buf = self._buf
        if not buf:
            return None
        self._searched = 0
        got = buf[:n]
        del buf[:n]
        return got

    # -- events ---------------------------------------------------------------------------
    def next_event(self) -> Any:
        """The next body event: Data, EndOfMessage, or NEED_DATA; once the body is done, what
        h11 says then: PAUSED with bytes of a next request buffered, ConnectionClosed after the
        peer closed, else NEED_DATA.

        Raises:
            ProtocolError: see the class.
        """
        if self.done:
            if self._buf:
                return PAUSED
            return ConnectionClosed() if self._closed else NEED_DATA
        event = self._read()
        if event is None:
            if self._closed:
                raise ProtocolError("Incomplete chunked body: the peer closed the connection")
            return NEED_DATA
        if type(event) is EndOfMessage:
            self.done = True
        return event

    def _read(self) -> Data | EndOfMessage | None:
        if self._fields is not None:
            return self._read_trailer()
        if self._crlf:
            got = self._at_most(len(self._crlf))
            if got is None:
                return None
            if not self._crlf.startswith(got):
                raise ProtocolError(_chunk_end_error(self._crlf, got))
            self._crlf = self._crlf[len(got) :]
            if self._crlf:
                return None
        chunk_start = False
        if not self._left:
            line = self._line()
            if line is None:
                self._check_partial_line(self._max_line, "Chunk size line too long", 400)
                return None
            m = _CHUNK_LINE.fullmatch(line)
            if m is None:
                raise ProtocolError(_line_error(line, "Malformed chunk size line"))
            size = int(m.group(1), 16)
            if size > MAX_CHUNK_BYTES:
                raise ProtocolError("Chunk size too large")
            if not size:
                self._fields = []
                return self._read_trailer()
            self._left = size
            chunk_start = True
        data = self._at_most(self._left)
        if data is None:
            return None
        left = self._left = self._left - len(data)
        if not left:
            self._crlf = b"\r\n"
        # a bytearray, as h11's own reader hands out (its annotation says bytes); the server
        # makes the one bytes copy
        return Data(data, chunk_start, not left)

    def _read_trailer(self) -> EndOfMessage | None:
        fields = self._fields
        assert fields is not None
        while True:
            line = self._line()
            if line is None:
                self._check_partial_line(
                    self._max_trailer - self._trailer_bytes, "Trailer section too large", 431
                )
                return None
            if len(line) == 2:  # the empty line (CRLF) that ends the body
                return EndOfMessage(_trailer_fields(fields))
            self._trailer_bytes += len(line)
            if self._trailer_bytes > self._max_trailer:
                raise ProtocolError("Trailer section too large", 431)
            m = _FIELD_LINE.fullmatch(line)
            if m is None:
                raise ProtocolError(_line_error(line, "Malformed trailer field"))
            fields.append((m.group(1), m.group(2)))
            if len(fields) > self._max_fields:
                raise ProtocolError("Too many trailer fields", 431)

    def _check_partial_line(self, room: int, too_long: str, status: int) -> None:
        # No CRLF anywhere in what is buffered: all of it is one unfinished line. Judge it now
        # rather than wait (for a timeout) for a CRLF: an LF in it is already a bare LF.
        buf = self._buf
        if not buf:
            return
        if len(buf) > room:
            raise ProtocolError(too_long, status)
        if b"\n" in buf:
            raise ProtocolError("Bare LF in chunked body (lines must end with CRLF)")


def _trailer_fields(fields: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The trailer's fields as h11's EndOfMessage holds them (names in lower case, one
    Content-Length value), checked as h11 checks a message's framing fields there (its
    normalize_and_validate), in its words: a Content-Length of other than digits or two
    different ones, a second Transfer-Encoding or one other than chunked. The peer's fault: 400.
    """
    out = []
    length = None
    coded = False
    for name, value in fields:
        name = name.lower()
        why = ""
        if name == b"content-length":
            values = {v.strip() for v in value.split(b",")}
            value = values.pop()
            if values:
                why = "conflicting Content-Length headers"
            elif not value.isdigit() or len(value) > _MAX_LENGTH_DIGITS:  # ASCII digits only
                why = "bad Content-Length"
            elif length is None:
                length = value
            elif length != value:
                why = "conflicting Content-Length headers"
            else:
                continue  # h11 keeps the first of equal ones
        elif name == b"transfer-encoding":
            value = value.lower()
            if coded:
                why = "multiple Transfer-Encoding headers"
            elif value != b"chunked":
                why = "Only Transfer-Encoding: chunked is supported"
            coded = True
        if why:
            raise ProtocolError(f"Malformed trailer section: {why}")
        out.append((name, value))
    return out


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
