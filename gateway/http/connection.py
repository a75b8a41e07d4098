# Sans-IO HTTP/1.1 server connection: h11 plus the limits and smuggling checks h11 leaves to us,
# and a reader of its own for plain heads (most requests: _fast_head), which h11 then never sees:
# h11 (gateway.http.parser.load) is imported at the first head of another shape, and its body
# events are handed out as gateway.http.events' (from_h11), the ones the readers here make.
# Owns: the Request event the server reads, counting request-head bytes (h11 only checks heads
# that are still incomplete, h11 #182), the request-line limit (414), header count, raw-head
# checks (duplicate Content-Length, CL with TE, bare CR, bare LF, obs-fold, control bytes, Host
# count and syntax), the request-target's form against the method (RFC 9112 3.2) and its split
# (once, here), the HTTP version (505 for anything but 1.x), an expectation other than
# 100-continue (417), reading chunked bodies itself (gateway.http.chunked: stricter than h11's
# reader, which h11 is never given a byte of such a body for), and wrapping h11 errors into
# ProtocolError.
# Must not: touch sockets, tasks or clocks (no trio here); the server feeds bytes and reads events.
# Uses h11 through its public API only (no private readers or attributes).
#
# h11 is lenient where RFC 9112 lets a server be (bare LF line endings, obs-fold it unfolds) or
# says nothing about (Host syntax); a proxy in front that reads such bytes differently would
# desynchronise from us, so every such head is a 400 here before its Request is handed out.
#
# Responses are not written through h11 (see gateway.http.writer): h11 only parses.
#
# Theory of operation: the peer's side is either waiting for a request head (HEAD), sending a
# body (BODY), or done (DONE/CLOSED), mirrored from h11's their_state. While in HEAD we keep the
# raw bytes of the head seen so far in `_scan` (the leftover of a pipelined previous request plus
# every new read) so that the whole head can be validated byte-exactly before its Request event
# is handed out. A complete head of the plain shape (_fast_head: a usual method, an origin-form
# target, HTTP/1.1, CRLFs, field names of letters, digits and "-", no Transfer-Encoding nor
# Expect, no raw fault) is read here into our Request (h11's, reduced to what the server reads),
# and its Content-Length body (or none) is given out by a LengthReader, which pauses after it
# when the head proposed a protocol switch (Upgrade: h11's MIGHT_SWITCH_PROTOCOL). Any
# other head, and the end of the stream in the middle of one, goes to a fresh h11 connection,
# fed all of `_scan` at once, which reads it as before; from then on every read goes to h11 too.
# tests/test_http_fast_head.py holds the two ways to the same events and errors. After the
# Request of a chunked request, the bytes h11 buffered past the head (its public trailing_data)
# and every later read go to a ChunkedReader instead, which gives the Data and EndOfMessage
# events. The next request starts with the body reader's (or h11's) leftover bytes in `_scan`.
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from gateway.errors import RemoteProtocolError
from gateway.http import parser
from gateway.http.chunked import ChunkedReader
from gateway.http.events import NEED_DATA, PAUSED, ConnectionClosed, Data, EndOfMessage, from_h11
from gateway.http.target import is_authority_form, is_valid_host, split_target
from gateway.http.writer import ResponseWriter

if TYPE_CHECKING:
    from gateway.http.parser import h11  # h11 or h11_mypyc, for the type checker

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


def _head_end(scan: bytes | bytearray) -> int:
    """Where h11 ends a head (its own search is ``\\n\\r?\\n``), or -1: bare LF is found here as
    h11 would take it, so that the complete head can be rejected for it below rather than
    waited on. Two C-speed finds (a regex search cost five times as much per request)."""
    a = scan.find(b"\n\r\n")
    b = scan.find(b"\n\n", 0, None if a < 0 else a + 2)
    if b >= 0:
        return b + 2
    return -1 if a < 0 else a + 3


# What no head may hold: a control byte other than CR, LF and HTAB (NUL included: h11 catches
# most in values, not in every position, e.g. names or the request line); a CR not followed by LF
# (bare CR) or an LF not preceded by CR (bare LF: h11 takes both as line ends, RFC 9112 2.2 lets a
# server do so, a proxy may not); a line starting with SP or HTAB (obs-fold, RFC 9112 5.2: reject
# or unfold; h11 unfolds, so "X: a\r\n Content-Length: 6" would be a field value to us and a
# Content-Length to a proxy that does not unfold). Checked with C-speed bytes methods (the head
# without its CRLFs, then the bytes left that are not _PLAIN); this regex only names the fault
# once one is known.
_BAD_HEAD = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n|\n[ \t]")
_PLAIN = bytes(b for b in range(256) if b == 9 or 0x20 <= b != 0x7F)  # no CR, LF nor control
# Framing-relevant header names at the start of a line, with optional whitespace before the colon
# (whitespace before the colon is itself a smuggling shape; h11 rejects it, we report it first),
# and Expect (found by the same scan: no request without one pays for it).
_FRAMING = re.compile(rb"\n(content-length|transfer-encoding|host|expect)([ \t]*):([^\r\n]*)", re.I)
# h11 quotes the offending raw bytes in its messages (": bytearray(b'...')"); the message is sent
# back to the client and logged, so that tail is cut: no echo of attacker bytes.
_RAW_TAIL = re.compile(r":?\s*(?:bytearray\(|b'|b\").*\Z", re.S)
_NO_TARGET: tuple[str, str, str, str | None] = ("", "", "", None)
# What _fast_head reads without h11: the request line (methods h11 frames alike; CONNECT and
# the rest go to h11), and the fields it notes: Host (one), Content-Length (the body's framing),
# Connection (what may follow the body), Upgrade (a protocol switch proposed: after the body,
# the connection pauses, as h11's MIGHT_SWITCH_PROTOCOL), and those that send the head to h11
# (their semantics are h11's: chunked framing, 100-continue).
_FAST_LINE = re.compile(rb"(GET|HEAD|POST|PUT|DELETE|PATCH|OPTIONS) (/[\x21-\x7e]*) HTTP/1\.1\r\n")
_FAST_NOTED = frozenset(
    (b"host", b"content-length", b"connection", b"transfer-encoding", b"expect", b"upgrade")
)
# the fields Cycle.begin reads (h11 hands out names in lower case)
_CYCLE_FIELDS = frozenset(
    (b"content-length", b"transfer-encoding", b"authorization", b"upgrade", b"connection")
)


@dataclass(frozen=True, slots=True)
class HTTPLimits:
    """The head limits the sans-IO layer enforces (taken from the profile's [http])."""

    max_head_bytes: int = 8192
    max_request_line_bytes: int = 4096
    max_header_count: int = 64


class Request:
    """A request head, as next_event hands it out: h11's Request event reduced to what the
    server reads (the same fields, names in lower case; no raw field names, no per-field
    objects). Made by _fast_head, or from h11's event for the heads h11 reads.

    Args:
        method: the method, e.g. b"GET".
        target: the request-target as received.
        headers: (lower-case name, value) pairs in order, values without surrounding whitespace.
        http_version: e.g. b"1.1".
    """

    __slots__ = ("method", "target", "headers", "http_version")

    def __init__(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        http_version: bytes,
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.http_version = http_version

    def __repr__(self) -> str:
        return (
            f"Request(method={self.method!r}, target={self.target!r}, "
            f"headers={self.headers!r}, http_version={self.http_version!r})"
        )


class ServerConnection:
    """One server-side HTTP/1.1 connection: bytes in, validated events out, bytes to send.

    Args:
        limits: head limits.
    """

    __slots__ = ("_h11", "_limits", "_scan", "_end", "_in_head", "_eof", "target", "_chunked")
    # _chunked holds the body reader of the current request when h11 does not read its body:
    # a ChunkedReader, or a LengthReader after a head read by the fast path (_fast_head).

    def __init__(self, limits: HTTPLimits) -> None:
        self._limits = limits
        # made only for a head the fast path (_fast_head) does not take, or at the end of the
        # stream in the middle of a head: h11 then gets every byte of _scan. None while a head
        # is still arriving; an idle keep-alive connection holds no parser state (about 1.3 KiB
        # of h11 objects).
        self._h11: h11.Connection | None = None
        self._scan: bytes | bytearray = b""
        self._end = -1  # _head_end(self._scan), found once per read
        self._in_head = True
        # the peer closed where a head would start (no byte of one received): ConnectionClosed,
        # as h11 says then, without h11 (a client leaving between requests, or a connection
        # opened and closed with nothing sent, must not import a parser)
        self._eof = False
        # (url, path, query, authority) of the current request, split once with its head (see
        # gateway.http.target.split_target); the server reads it instead of splitting again
        self.target = _NO_TARGET
        # the body parser of the current request while it is chunked (h11 never sees its body)
        self._chunked: ChunkedReader | LengthReader | None = None

    # -- state --------------------------------------------------------------------------------
    def _parser(self) -> h11.Connection:
        conn = self._h11
        if conn is None:
            h11 = parser.load()  # imported at the first head _fast_head does not take
            # h11's own guard fires only for incomplete heads; ours (below) for complete ones.
            # Give h11 room for one receive buffer beyond our limit so ours always reports first.
            conn = self._h11 = h11.Connection(
                h11.SERVER, max_incomplete_event_size=self._limits.max_head_bytes + 65536
            )
        return conn

    def _feed_h11(self) -> h11.Connection:
        """Hand the head so far (and whatever came after it) to a fresh h11 connection."""
        conn = self._parser()
        scan = self._scan
        if scan:
            conn.receive_data(scan if type(scan) is bytes else bytes(scan))
        return conn

    @property
    def they_are_waiting_for_100_continue(self) -> bool:
        conn = self._h11
        return conn is not None and conn.they_are_waiting_for_100_continue

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """The bytes received and not parsed yet, and whether the peer closed (as h11's)."""
        chunked = self._chunked
        if chunked is not None:
            return chunked.trailing_data
        conn = self._h11
        return (b"", self._eof) if conn is None else conn.trailing_data

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
            if self._eof:
                raise RuntimeError("received close, then received more data?")  # h11's words
            scan = self._scan
            if scan:
                if not isinstance(scan, bytearray):
                    scan = self._scan = bytearray(scan)
                scan += data
            else:
                self._scan = scan = data
            end = self._end = _head_end(scan)
            if end < 0:
                self._check_incomplete_head(scan)
            conn = self._h11
            if conn is None:
                return  # kept in _scan: the whole head is read at once, by _fast_head or h11
            conn.receive_data(data if type(data) is bytes else bytes(data))
            return
        elif (chunked := self._chunked) is not None:
            chunked.receive_data(data)
            return
        if not data and self._in_head and self._h11 is None:
            if not self._scan:
                self._eof = True  # between requests: next_event says ConnectionClosed
                return
            self._feed_h11()  # the end of the stream: h11 says what a partial head means
        # bytes only: the compiled h11_mypyc refuses a bytearray (TypeError), which trio's memory
        # streams hand out; h11 takes either
        self._parser().receive_data(data if type(data) is bytes else bytes(data))

    def _check_incomplete_head(self, scan: bytes | bytearray) -> None:
        limits = self._limits
        if _line_length(scan) > limits.max_request_line_bytes:
            raise ProtocolError("Request line too long", 414)
        if len(scan) > limits.max_head_bytes:
            raise ProtocolError("Request header fields too large", 431)

    def next_event(self) -> object:
        """The next event: Request, or gateway.http.events' Data, EndOfMessage,
        ConnectionClosed, NEED_DATA or PAUSED (h11's, when h11 reads the request, turned into
        those).

        Raises:
            ProtocolError: the peer broke HTTP/1.1 framing or one of our limits; status_hint says
                what to reply (400, 413, 414, 431, 501 is mapped to 400).
        """
        chunked = self._chunked
        if chunked is not None:
            return chunked.next_event()
        conn = self._h11
        if conn is None:
            if self._end < 0 or not self._in_head:
                # no complete head since the last request
                return ConnectionClosed() if self._eof else NEED_DATA
            fast = self._fast_head()
            if fast is not None:
                return fast
            conn = self._feed_h11()
        h11_module = parser.load()  # the module (loaded by _feed_h11 or earlier)
        try:
            event = conn.next_event()
        except h11_module.RemoteProtocolError as exc:
            raise _wrap(exc) from None
        if type(event) is h11_module.Request:
            got = cast("h11.Request", event)
            head = Request(got.method, got.target, list(got.headers), got.http_version)
            is_chunked = self._check_head(head)
            self._in_head = False
            self._scan = b""  # (_end is set again with the next head's first bytes)
            if is_chunked:
                # the body is parsed here, from the bytes h11 holds after the head on: h11
                # is fed nothing more for this request (the next one gets a fresh h11)
                data, closed = conn.trailing_data
                limits = self._limits
                chunked = self._chunked = ChunkedReader(
                    limits.max_request_line_bytes,
                    limits.max_head_bytes,
                    limits.max_header_count,
                    data,
                )
                if closed:
                    chunked.receive_data(b"")
            return head
        return from_h11(event, h11_module)

    def _fast_head(self) -> Request | None:
        """The Request of the complete head in _scan, read without h11; None when the head is
        not of the plain shape this reads (h11 then reads it, exactly as it would have).

        The plain shape: a method of _FAST_LINE's, an origin-form target of visible ASCII,
        HTTP/1.1, CRLF line ends, and field lines of h11's own grammar (a name, here of
        letters, digits and "-", a colon, the value with optional whitespace around it), with
        neither Transfer-Encoding nor Expect, whose semantics h11 keeps (chunked framing,
        100-continue). An Upgrade proposes a protocol switch: after its body the reader pauses,
        as h11 does until the server answers (MIGHT_SWITCH_PROTOCOL). Every head this takes h11
        takes too (its Request's own checks included: one Host, Content-Length digits), and
        reads into the same Request;
        tests/test_http_fast_head.py compares the two on generated heads. A Content-Length body
        is then read by a LengthReader, as h11 would hand it out.

        Raises:
            ProtocolError: the request line is too long (414), there are too many fields (431),
                or the Host is malformed: what _check_head would have said of it.
        """
        scan = self._scan
        end = self._end
        head = scan if end == len(scan) else scan[:end]
        if type(head) is not bytes:  # a head that came in several reads
            head = bytes(head)
        if len(head) > self._limits.max_head_bytes:
            return None  # h11's path reports it (431), as before
        if _raw_fault(head):
            return None  # h11 reads it and says what it says, then _check_head
        m = _FAST_LINE.match(head)
        if m is None:
            return None
        # h11's field-line grammar, given that the head has no raw fault (no control byte but
        # HTAB, no bare CR or LF, no obs-fold): a token, a colon, then the value with its
        # optional whitespace stripped. And what h11's Request checks of the fields: exactly one
        # Host, Content-Length digits (one field; h11 merges equal ones, which _check_head
        # refuses, and refuses different ones in words of its own: both left to h11).
        fields = []
        hosts = 0
        host = b""
        length = 0
        close = False
        switch = False
        # (a head without fields gives one empty line here: no colon, so h11 reads it)
        for line in head[m.end() : -4].split(b"\r\n"):
            name, colon, value = line.partition(b":")
            # letters, digits and "-": the field names in use (any other tchar goes to h11)
            if not colon or not name.replace(b"-", b"").isalnum():
                return None
            name = name.lower()
            value = value.strip(b" \t")
            if name in _FAST_NOTED:
                if name == b"host":
                    hosts += 1
                    host = value
                elif name == b"content-length":
                    if length or not value.isdigit() or len(value) > 18:
                        return None
                    length = int(value) or -1  # -1: a Content-Length of 0 seen
                elif name == b"connection":
                    # h11's keep-alive rule for HTTP/1.1: a "close" token in any Connection
                    close = close or b"close" in [
                        t.strip(b" \t").lower() for t in value.split(b",")
                    ]
                elif name == b"upgrade":
                    # h11's proposal: any non-empty member of an Upgrade list
                    switch = switch or any(t.strip() for t in value.split(b","))
                else:  # Transfer-Encoding, Expect: their semantics are h11's
                    return None
            fields.append((name, value))
        if hosts != 1:
            return None
        # what _check_head checks of a head that h11 read, and a plain one can still break
        # (its size, its raw bytes and its framing fields are known good by now)
        self._check_lengths(head, len(fields))
        if not is_valid_host(host):
            raise ProtocolError("Malformed Host header")
        target = m.group(2)
        self.target = split_target(target)  # origin-form, and never CONNECT: no form to check
        event = Request(m.group(1), target, fields, b"1.1")
        rest = scan[end:] if end != len(scan) else b""
        self._chunked = LengthReader(max(length, 0), rest, close=close, switch=switch)
        self._in_head = False
        self._scan = b""
        return event

    def _check_lengths(self, head: bytes | bytearray, fields: int) -> None:
        """The request line's length and the number of fields of a complete head (414, 431)."""
        limits = self._limits
        if _line_length(head) > limits.max_request_line_bytes:
            raise ProtocolError("Request line too long", 414)
        if fields > limits.max_header_count:
            raise ProtocolError("Too many header fields", 431)

    def _check_head(self, event: Request) -> bool:
        """Validate a complete head h11 read (see the module comment); True for a chunked body.

        Raises:
            ProtocolError: the head breaks a limit or RFC 9112.
        """
        scan = self._scan
        end = self._end  # where receive_data found the head's end (h11 found it there too)
        head = scan if end < 0 or end == len(scan) else scan[:end]  # no copy: the common case
        if len(head) > self._limits.max_head_bytes:
            raise ProtocolError("Request header fields too large", 431)
        self._check_lengths(head, len(event.headers))
        # without its CRLFs, a head has no CR, LF nor control byte left: any is bare or banned
        if _raw_fault(head):
            raise ProtocolError(_bad_head_message(head))
        version = event.http_version
        if version[:2] != b"1.":  # h11 takes any digit.digit
            raise ProtocolError("HTTP version not supported (only HTTP/1.x)", 505)
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
            elif lname == b"host":
                host += 1
                if not is_valid_host(value.strip(b" \t")):
                    raise ProtocolError("Malformed Host header")
            else:
                _check_expect(value)
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
        if not host and version != b"1.0":
            # h11 asks for Host on 1.1 only; 1.2 and up are 1.1 to us (RFC 9110 2.5)
            raise ProtocolError("Missing Host header")
        target = event.target
        method = event.method
        if target[0] != 47 or method == b"CONNECT":  # not origin-form ("/..."), or CONNECT
            _check_target_form(method, target)
        self.target = split_target(target)
        return te > 0  # its one Transfer-Encoding, checked above, is "chunked"

    def start_next_cycle(self) -> None:
        """Reset for the next request on a kept-alive connection (pipelined bytes stay).

        Responses are written by gateway.http.writer, not h11, so h11 never sees our side: a
        fresh h11 connection (about 1 us) takes over the leftover bytes instead, made only when
        there are some (or when the next request's first bytes arrive).
        """
        chunked = self._chunked
        if chunked is not None:
            leftover, closed = chunked.trailing_data
            self._chunked = None
        else:
            old = self._h11
            leftover, closed = old.trailing_data if old is not None else (b"", False)
        self._h11 = None
        self._in_head = True
        self._scan = leftover
        self._eof = closed and not leftover
        if closed and leftover:  # h11 says what the bytes left and the end of the stream mean
            self._feed_h11().receive_data(b"")
        self.target = _NO_TARGET
        end = self._end = _head_end(leftover) if leftover else -1
        if leftover and end < 0:
            self._check_incomplete_head(leftover)


class LengthReader:
    """A Content-Length body (0 for none) after a head _fast_head read: bytes in, the events
    h11 would give out (Data as bytes arrive, EndOfMessage after the last one; then PAUSED
    while bytes of a next request wait, ConnectionClosed after the peer closed, else
    NEED_DATA; gateway.http.events'), and the same trailing_data. The session reads most of a
    larger body straight from the stream (Cycle.go_direct) once the bytes given here are
    handed out.

    Args:
        length: the body's Content-Length.
        data: the bytes received after the head.
        close: the request said ``Connection: close``: after its body, bytes from the peer are
            an error (h11's MUST_CLOSE), not a next request.
        switch: the request proposed a protocol switch (Upgrade): after its body, PAUSED
            whatever follows, the end of the stream included (h11's MIGHT_SWITCH_PROTOCOL,
            which takes precedence over MUST_CLOSE); the server reads trailing_data.
    """

    __slots__ = ("_length", "_left", "_buf", "_closed", "_close", "_switch", "done")

    def __init__(
        self, length: int, data: bytes | bytearray, *, close: bool = False, switch: bool = False
    ) -> None:
        self._length = length
        self._close = close
        self._switch = switch
        self._left = length
        self._buf = data
        self._closed = False
        self.done = False  # EndOfMessage was handed out

    def receive_data(self, data: bytes | bytearray) -> None:
        """Feed bytes from the peer (b"" for the end of the stream)."""
        if not data:
            self._closed = True
        elif self._buf:
            self._buf = bytes(self._buf) + bytes(data)
        else:
            self._buf = data

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """The bytes after the body (a pipelined request), and whether the peer closed."""
        buf = self._buf
        return (buf if type(buf) is bytes else bytes(buf)), self._closed

    def next_event(self) -> Any:
        """The next event, as h11 would give it for this body.

        Raises:
            ProtocolError: the peer closed before the body's end.
        """
        if self.done:
            if self._switch:
                return PAUSED
            if self._buf:
                if self._close:
                    raise ProtocolError("Got data when expecting EOF")  # h11's words
                return PAUSED
            return ConnectionClosed() if self._closed else NEED_DATA
        left = self._left
        if not left:
            self.done = True
            return EndOfMessage()
        buf = self._buf
        if buf:
            if len(buf) <= left:
                self._buf = b""
                data = buf
            else:
                data = buf[:left]
                self._buf = buf[left:]
            self._left = left - len(data)
            return Data(data if type(data) is bytes else bytes(data))
        if self._closed:
            raise ProtocolError(  # h11's words (ContentLengthReader.read_eof)
                "peer closed connection without sending complete message body "
                f"(received {self._length - left} bytes, expected {self._length})"
            )
        return NEED_DATA


def _raw_fault(head: bytes | bytearray) -> bool:
    """Whether a head holds a byte no head may hold (see _BAD_HEAD; _bad_head_message names it)."""
    return bool(
        head.replace(b"\r\n", b"").translate(None, _PLAIN) or b"\n " in head or b"\n\t" in head
    )


def _line_length(scan: bytes | bytearray) -> int:
    """Length of the first line without its line ending (the part received so far if open)."""
    nl = scan.find(b"\n")
    end = len(scan) if nl < 0 else nl
    if end and scan[end - 1] == 13:  # CR
        end -= 1
    return end


def _bad_head_message(head: bytes | bytearray) -> str:
    bad = _BAD_HEAD.search(head)
    found = bad.group() if bad is not None else b""
    if found == b"\r":
        return "Bare CR in request head"
    if found == b"\n":
        return "Bare LF in request head (lines must end with CRLF)"
    if found[:1] == b"\n":
        return "Obsolete line folding (obs-fold) in request head"
    return "Control character in request head"


def _check_expect(value: bytes) -> None:
    """RFC 9110 10.1.1: 100-continue is the only expectation there is; a server that gets
    another MAY answer 417 (Node does), rather than go on as if it had not been asked. Expect is
    a list: every member must be 100-continue (any case); empty members do not count."""
    for member in value.split(b","):
        member = member.strip(b" \t").lower()
        if member and member != b"100-continue":
            raise ProtocolError("Expectation Failed: only 100-continue is supported", 417)


def _check_target_form(method: bytes, target: bytes) -> None:
    """The target forms RFC 9112 3.2 ties to a method; split_target checks each form itself."""
    if method == b"CONNECT":
        if is_authority_form(target):
            # RFC 9110 9.1: a method the origin server does not implement is 501. Not 405: that
            # names a method known to, but not allowed on, one of our resources (with Allow),
            # while CONNECT asks for a tunnel and no resource here could ever serve it.
            raise ProtocolError("CONNECT is not supported: this server is not a proxy", 501)
        raise ProtocolError("CONNECT needs an authority-form request-target (host:port)")
    if target == b"*" and method != b"OPTIONS":
        raise ProtocolError("asterisk-form request-target (*) is only for OPTIONS")


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

    __slots__ = (
        "_conn",
        "_max_drain",
        "http10",
        "client_keep_alive",
        "has_body",
        "length",
        "body_bytes",
        "body_done",
        "reading",
        "direct",
        "authorization",
        "upgrade",
        "ws_upgrade",
    )

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
            if name not in _CYCLE_FIELDS:  # most fields: one set lookup, not five comparisons
                continue
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
    def response_head(
        self,
        status: int,
        headers: list[tuple[str, str]],
        *,
        head_request: bool,
        closing: bool,
        date: str,
    ) -> bytes:
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
        return self.head(
            status,
            headers,
            head_request=head_request,
            http10=self.http10,
            keep_alive=keep_alive,
            date=date,
        )

    def reusable(self, closing: bool) -> bool:
        """Whether the connection may carry another request after this cycle: the response is
        complete and allowed keep-alive, the body was read to its end, and the server is not
        closing (after a broken or abandoned body, what follows on the wire is still that
        body, never a request)."""
        return self.keep_alive and self.done and self.body_done and not closing
