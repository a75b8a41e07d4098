# Sans-IO HTTP/1.1 server connection: h11 plus the limits and smuggling checks h11 leaves to us.
# Owns: counting request-head bytes (h11 only checks heads that are still incomplete, h11 #182),
# the request-line limit (414), header count, raw-head checks (duplicate Content-Length, CL with
# TE, bare CR, control bytes, duplicate Host), and wrapping h11 errors into ProtocolError.
# Must not: touch sockets, tasks or clocks (no trio here); the server feeds bytes and reads events.
#
# Responses are not written through h11 (see gateway.http.writer): h11 only parses.
#
# Theory of operation: the peer's side is either waiting for a request head (HEAD), sending a
# body (BODY), or done (DONE/CLOSED), mirrored from h11's their_state. While in HEAD we keep the
# raw bytes of the head seen so far in `_scan` (the leftover of a pipelined previous request plus
# every new read) so that the whole head can be validated byte-exactly before its Request event
# is handed out. Everything is fed to h11 at once; `_scan` is only read, never re-fed.
from __future__ import annotations

import re
from dataclasses import dataclass

import h11

from gateway.errors import RemoteProtocolError
from gateway.http.writer import ResponseWriter

# Every error this module raises is the peer's fault (h11's RemoteProtocolError); the raise
# sites use this short name.
ProtocolError = RemoteProtocolError

__all__ = [
    "HTTPLimits",
    "ServerConnection",
    "Cycle",
    "Request",
    "Data",
    "EndOfMessage",
    "ConnectionClosed",
    "NEED_DATA",
    "PAUSED",
]

Request = h11.Request
Data = h11.Data
EndOfMessage = h11.EndOfMessage
ConnectionClosed = h11.ConnectionClosed
NEED_DATA = h11.NEED_DATA
PAUSED = h11.PAUSED

_HEAD_END = re.compile(rb"\r?\n\r?\n")
# A CR that is not followed by LF (bare CR: RFC 9112 section 2.2), or a control byte other than
# CR, LF and HTAB (NUL included): h11 catches most in values, not in every position (e.g. names,
# the request line), so we look once at the whole head, with one scan.
_BAD_BYTE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)")
# Framing-relevant header names at the start of a line, with optional whitespace before the colon
# (whitespace before the colon is itself a smuggling shape; h11 rejects it, we report it first).
_FRAMING = re.compile(rb"\n(content-length|transfer-encoding|host)([ \t]*):([^\r\n]*)", re.I)
# h11 quotes the offending raw bytes in its messages (": bytearray(b'...')"); the message is sent
# back to the client and logged, so that tail is cut: no echo of attacker bytes.
_RAW_TAIL = re.compile(r":?\s*(?:bytearray\(|b'|b\").*\Z", re.S)
# Larger chunk sizes (h11 takes up to 20 hex digits) wrap around in 64-bit parsers upstream: a
# classic smuggling shape, and no body of ours is ever that large.
_MAX_CHUNK_BYTES = (1 << 63) - 1
_TRANSFER_ENCODING = re.compile(rb"\ntransfer-encoding[ \t]*:", re.I)


@dataclass(frozen=True, slots=True)
class HTTPLimits:
    """The head limits the sans-IO layer enforces (taken from the profile's [http])."""

    max_head_bytes: int = 8192
    max_request_line_bytes: int = 4096
    max_header_count: int = 64


class ServerConnection:
    """One server-side HTTP/1.1 connection: bytes in, validated events out, bytes to send.

    Args:
        limits: head limits.
    """

    __slots__ = ("_h11", "_limits", "_scan", "_in_head", "_chunks")

    def __init__(self, limits: HTTPLimits) -> None:
        self._limits = limits
        # made when the first bytes of a request arrive: an idle keep-alive connection holds
        # no parser state (about 1.3 KiB of h11 objects per connection)
        self._h11: h11.Connection | None = None
        self._scan: bytes | bytearray = b""
        self._in_head = True
        self._chunks: _ChunkSizes | None = None  # follows a chunked body's size lines

    # -- state --------------------------------------------------------------------------------
    def _parser(self) -> h11.Connection:
        conn = self._h11
        if conn is None:
            # h11's own guard fires only for incomplete heads; ours (below) for complete ones.
            # Give h11 room for one receive buffer beyond our limit so ours always reports first.
            conn = self._h11 = h11.Connection(
                h11.SERVER, max_incomplete_event_size=self._limits.max_head_bytes + 65536)
        return conn

    @property
    def h11(self) -> h11.Connection:
        """The underlying h11 connection (for the server layer's state checks)."""
        return self._parser()

    @property
    def they_are_waiting_for_100_continue(self) -> bool:
        conn = self._h11
        return conn is not None and conn.they_are_waiting_for_100_continue

    @property
    def their_state(self) -> object:
        conn = self._h11
        return h11.IDLE if conn is None else conn.their_state

    @property
    def in_head(self) -> bool:
        """True while waiting for (part of) a request head."""
        return self._in_head

    @property
    def head_bytes_pending(self) -> int:
        """Bytes of a not yet complete request head received so far (0 when none)."""
        return len(self._scan) if self._in_head else 0

    # -- input --------------------------------------------------------------------------------
    def receive_data(self, data: bytes | bytearray) -> None:
        """Feed bytes from the peer (b"" for end of stream).

        Raises:
            ProtocolError: the bytes so far already break a head limit (414, 431).
        """
        if self._in_head and data:
            scan = self._scan
            if scan:
                if not isinstance(scan, bytearray):
                    scan = self._scan = bytearray(scan)
                scan += data
            else:
                self._scan = scan = data
            if _HEAD_END.search(scan) is None:
                self._check_incomplete_head(scan)
        elif self._chunks is not None:
            self._chunks.feed(data)
        self._parser().receive_data(data)  # type: ignore[arg-type]  # appended to a bytearray

    def _check_incomplete_head(self, scan: bytes | bytearray) -> None:
        limits = self._limits
        if _line_length(scan) > limits.max_request_line_bytes:
            raise ProtocolError("Request line too long", 414)
        if len(scan) > limits.max_head_bytes:
            raise ProtocolError("Request header fields too large", 431)

    def next_event(self) -> object:
        """The next event: h11.Request, Data, EndOfMessage, ConnectionClosed, NEED_DATA or PAUSED.

        Raises:
            ProtocolError: the peer broke HTTP/1.1 framing or one of our limits; status_hint says
                what to reply (400, 413, 414, 431, 501 is mapped to 400).
        """
        conn = self._h11
        if conn is None:
            return h11.NEED_DATA  # nothing received since the last request
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise _wrap(exc) from None
        if type(event) is h11.Request:
            self._check_head(event)
            self._watch_chunks()
            self._in_head = False
            self._scan = b""
        elif type(event) is h11.Data or (event is h11.NEED_DATA and not self._in_head):
            chunks = self._chunks
            if chunks is not None and chunks.too_large:
                raise ProtocolError("Chunk size too large")
        return event

    def _watch_chunks(self) -> None:
        # A chunked body (its Transfer-Encoding was checked to be exactly "chunked"): follow
        # its size lines from the bytes that came with the head on. h11 does not say how large
        # the chunk it is reading was declared.
        scan = self._scan
        if _TRANSFER_ENCODING.search(scan) is None:
            return
        m = _HEAD_END.search(scan)
        chunks = self._chunks = _ChunkSizes()
        if m is not None:
            chunks.feed(scan[m.end():])

    def _check_head(self, event: Request) -> None:
        limits = self._limits
        scan = self._scan
        m = _HEAD_END.search(scan)
        head = scan[: m.end()] if m is not None else scan
        if len(head) > limits.max_head_bytes:
            raise ProtocolError("Request header fields too large", 431)
        if _line_length(head) > limits.max_request_line_bytes:
            raise ProtocolError("Request line too long", 414)
        if len(event.headers) > limits.max_header_count:
            raise ProtocolError("Too many header fields", 431)
        bad = _BAD_BYTE.search(head)
        if bad is not None:
            if bad.group() == b"\r":
                raise ProtocolError("Bare CR in request head")
            raise ProtocolError("Control character in request head")
        cl = te = host = 0
        for name, space, value in _FRAMING.findall(head):
            if space:
                raise ProtocolError("Whitespace before colon in header field")
            lname = name.lower()
            if lname == b"content-length":
                cl += 1
                if not value.strip().isdigit():
                    raise ProtocolError("Malformed Content-Length")
            elif lname == b"transfer-encoding":
                te += 1
                if value.strip().lower() != b"chunked":
                    raise ProtocolError("Unsupported Transfer-Encoding (only 'chunked')")
            else:
                host += 1
        if cl > 1:
            raise ProtocolError("Duplicate Content-Length")
        if te > 1:
            raise ProtocolError("Duplicate Transfer-Encoding")
        if cl and te:
            raise ProtocolError("Content-Length together with Transfer-Encoding")
        if te and event.http_version == b"1.0":
            # RFC 9112 section 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing
            raise ProtocolError("Transfer-Encoding in an HTTP/1.0 request")
        if host > 1:
            raise ProtocolError("Duplicate Host header")

    def start_next_cycle(self) -> None:
        """Reset for the next request on a kept-alive connection (pipelined bytes stay).

        Responses are written by gateway.http.writer, not h11, so h11 never sees our side: a
        fresh h11 connection (about 1 us) takes over the leftover bytes instead, made only when
        there are some (or when the next request's first bytes arrive).
        """
        old = self._h11
        leftover, closed = old.trailing_data if old is not None else (b"", False)
        self._h11 = None
        if leftover:
            self._parser().receive_data(leftover)
        if closed:
            self._parser().receive_data(b"")
        self._in_head = True
        self._scan = leftover
        self._chunks = None
        if leftover and _HEAD_END.search(leftover) is None:
            self._check_incomplete_head(leftover)


class _ChunkSizes:
    """Follows a chunked request body just far enough to read each chunk-size line as it
    arrives, and notes one over _MAX_CHUNK_BYTES (reported by the next next_event()). h11
    validates the framing itself: on anything malformed this stops following and leaves the
    error to h11; after the last chunk it stops too (trailers and what follows are h11's).
    """

    __slots__ = ("_left", "_line", "_done", "too_large")

    def __init__(self) -> None:
        self._left = 0  # bytes of chunk data (and its CRLF) still to skip
        self._line = b""  # the start of a size line split across reads
        self._done = False
        self.too_large = False

    def feed(self, data: bytes | bytearray) -> None:
        pos = 0
        n = len(data)
        while pos < n and not self._done:
            left = self._left
            if left:
                step = min(left, n - pos)
                self._left = left - step
                pos += step
                continue
            nl = data.find(b"\n", pos)
            if nl < 0:
                line = self._line + data[pos:]
                if len(line) > 1024:
                    self._done = True  # not a size line h11 accepts
                self._line = bytes(line)
                return
            line = self._line + data[pos:nl]
            self._line = b""
            pos = nl + 1
            try:
                size = int(line.split(b";", 1)[0].strip(b" \t\r"), 16)
            except ValueError:
                self._done = True  # malformed: h11 says so
                return
            if size > _MAX_CHUNK_BYTES:
                self.too_large = True
                self._done = True
            elif size <= 0:
                self._done = True  # the last chunk (or nonsense h11 refuses)
            else:
                self._left = size + 2  # the chunk's data and its CRLF


def _line_length(scan: bytes | bytearray) -> int:
    """Length of the first line without its line ending (the part received so far if open)."""
    nl = scan.find(b"\n")
    end = len(scan) if nl < 0 else nl
    if end and scan[end - 1] == 13:  # CR
        end -= 1
    return end


def _wrap(exc: h11.RemoteProtocolError) -> ProtocolError:
    status = exc.error_status_hint
    if status == 501:  # h11 says 501 for unknown Transfer-Encoding; a smuggling shape: 400
        status = 400
    if status == 431:
        return ProtocolError("Request header fields too large", 431)
    text = _RAW_TAIL.sub("", str(exc)) or "Malformed HTTP request"
    return ProtocolError(text[:200], status if 400 <= status < 600 else 400)


class Cycle(ResponseWriter):
    """One request/response cycle of a connection: framing and keep-alive, decided once.

    The request's side is read from its head in one pass (``begin``): whether it has a body,
    its Content-Length or chunked framing, what the client said about keep-alive (HTTP/1.0,
    ``Connection``), and the fields the server needs besides (Authorization, Upgrade). The
    response's framing is the ResponseWriter's (``head``/``data``/``end``); ``head`` decides
    whether the connection stays open after this response, and ``reusable`` whether it may
    carry the next request. Body reads report here (``start_body``, ``body_received``,
    ``body_ended``), so the server only moves bytes: ``body_left`` is how much of a
    Content-Length body is still due (the server may read it straight from the stream, never
    a byte of the next request). h11 keeps the same in its ConnectionState; our responses are
    written by gateway.http.writer, not h11, so the decisions live here.

    One object per connection, reset by ``begin`` for every request: no allocation per
    request.

    Args:
        conn: the connection whose requests these are (for its 100-continue state).
        max_drain_bytes: the most unread body the server will read and drop to keep the
            connection open after an early response; a longer body closes it.
    """

    __slots__ = ("_conn", "_max_drain", "http10", "client_keep_alive", "has_body", "length",
                 "body_bytes", "body_done", "reading", "direct", "authorization", "upgrade",
                 "ws_upgrade")

    def __init__(self, conn: ServerConnection, max_drain_bytes: int) -> None:
        super().__init__()
        self._conn = conn
        self._max_drain = max_drain_bytes
        self.http10 = False
        self.client_keep_alive = True
        self.has_body = False
        self.length: int | None = None  # the request's Content-Length (None: chunked or none)
        self.body_bytes = 0
        self.body_done = True
        self.reading = False  # the request body is being read (100 Continue was decided)
        self.direct = False  # the rest of the body is read straight from the stream
        self.authorization: bytes | None = None
        self.upgrade = False  # an Upgrade header (any protocol)
        self.ws_upgrade = False  # Upgrade: websocket

    def begin(self, event: Request) -> None:
        """Read a request head's framing (it was validated by ServerConnection.next_event).

        Args:
            event: the h11 Request event.
        """
        self.reset()
        http10 = event.http_version == b"1.0"
        keep_alive = not http10
        has_body = False
        length = None
        auth = None
        upgrade = ws_upgrade = False
        for name, value in event.headers:
            if name == b"content-length":
                length = int(value)  # digits only: checked with the head
                has_body = length != 0
            elif name == b"transfer-encoding":
                has_body = True
            elif name == b"authorization":
                auth = value
            elif name == b"upgrade":
                upgrade = True
                ws_upgrade = value.lower() == b"websocket"
            elif name == b"connection":
                tokens = value.lower()
                if b"close" in tokens:
                    keep_alive = False
                elif http10 and b"keep-alive" in tokens:
                    keep_alive = True
        self.http10 = http10
        self.client_keep_alive = keep_alive
        self.has_body = has_body
        self.length = length
        self.body_bytes = 0
        self.body_done = not has_body
        self.reading = False
        self.direct = False
        self.authorization = auth
        self.upgrade = upgrade
        self.ws_upgrade = ws_upgrade

    # -- the request body --------------------------------------------------------------------
    def start_body(self) -> bool:
        """The first read of the body: True when a ``100 Continue`` must be sent first (the
        client waits for it and no response has started)."""
        self.reading = True
        return self._conn.they_are_waiting_for_100_continue and not self.started

    def go_direct(self) -> bool:
        """h11 has handed out what it buffered of the body and needs more bytes: True when the
        rest is a Content-Length body, which the server then reads straight from the stream
        (``body_left`` bytes at most, as received: no copy through h11's buffer; h11 has
        validated the framing, and the next request starts a fresh h11 connection)."""
        self.direct = self.length is not None
        return self.direct

    def body_left(self) -> int | None:
        """Bytes of a Content-Length body still due (None for a chunked body)."""
        length = self.length
        return None if length is None else length - self.body_bytes

    def body_received(self, nbytes: int) -> None:
        """``nbytes`` more body bytes arrived; a Content-Length body ends with its last byte."""
        self.body_bytes += nbytes
        length = self.length
        if length is not None and self.body_bytes >= length:
            self.body_done = True

    def body_ended(self) -> None:
        """The body ended (its last chunk, or it broke and will not be read any further)."""
        self.body_done = True

    def can_drain(self) -> bool:
        """Whether reading and dropping the unread rest of the body would keep the connection:
        not if the client waits for a 100 Continue it never got (closing is the clean
        answer), nor for a chunked body or more than max_drain_bytes."""
        if self._conn.they_are_waiting_for_100_continue and not self.reading:
            return False
        left = self.body_left()
        return left is not None and left <= self._max_drain

    # -- the response and the connection -----------------------------------------------------
    def response_head(self, status: int, headers: list[tuple[str, str]], *, head_request: bool,
                      closing: bool, date: str) -> bytes:
        """The response head; decides whether the connection stays open after it.

        It stays open when the client allows it, the server is not closing, and the request
        body is read (or short enough to drain); the response's own framing may still close
        it (HTTP/1.0 without a length, the app's ``Connection: close``).

        Args:
            status, headers, head_request, date: as ResponseWriter.head.
            closing: the server will close after this response (draining, request cap, a
                body that broke).
        """
        keep_alive = self.client_keep_alive and not closing
        if keep_alive and not self.body_done and not self.can_drain():
            keep_alive = False
        return self.head(status, headers, head_request=head_request, http10=self.http10,
                         keep_alive=keep_alive, date=date)

    def reusable(self, closing: bool) -> bool:
        """Whether the connection may carry another request after this cycle: the response is
        complete and allowed keep-alive, the body was read to its end, and the server is not
        closing (after a broken or abandoned body, what follows on the wire is still that
        body, never a request)."""
        return self.keep_alive and self.done and self.body_done and not closing
