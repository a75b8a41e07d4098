# Sans-IO response writer: status line, headers and body framing (Content-Length, chunked, or
# read-until-close for HTTP/1.0), decided once per response. h11 parses requests (those of other
# than the plain shape: gateway.http.connection reads plain heads itself); responses are
# written here because h11's send path re-validates every header we already validated when it
# was set (gateway.app.response.check_header) and costs as much again as parsing.
# Must not: touch sockets; it returns bytes. Header names/values are trusted to be validated.
from __future__ import annotations

from gateway.errors import REASONS, LocalProtocolError

__all__ = ["ResponseWriter"]

# the status line of every status with a reason phrase, made once
_STATUS_LINE = {k: f"HTTP/1.1 {k} {v}\r\n" for k, v in REASONS.items()}
# the lengths of the names the writer replaces or reads: any other name is copied as it is,
# without lower-casing it first (Connection, Content-Length, Transfer-Encoding)
_SPECIAL_LENGTHS = frozenset(len(n) for n in ("connection", "content-length", "transfer-encoding"))


class ResponseWriter:
    """Frames one response at a time on a connection.

    After ``end()``, ``keep_alive`` says whether the connection may carry another request.
    """

    __slots__ = ("keep_alive", "chunked", "remaining", "no_body", "started", "done")

    def __init__(self) -> None:
        self.keep_alive = True
        self.chunked = False
        self.remaining: int | None = None
        self.no_body = False
        self.started = False
        self.done = False

    def reset(self) -> None:
        self.chunked = False
        self.remaining = None
        self.no_body = False
        self.started = False
        self.done = False

    def head(
        self,
        status: int,
        headers: list[tuple[str, str]],
        *,
        head_request: bool,
        http10: bool,
        keep_alive: bool,
        date: str,
    ) -> bytes:
        """Bytes of the status line and headers; decides the body framing.

        Args:
            status: the status code.
            headers: validated (name, value) pairs; Content-Length is honoured, any
                Transfer-Encoding or Connection from the app is replaced by ours.
            head_request: the request was HEAD (no body follows, Content-Length is kept).
            http10: the request was HTTP/1.0 (no chunked encoding).
            keep_alive: the connection may stay open after this response.
            date: the Date header value.
        """
        if self.started:
            raise LocalProtocolError("response already started", 500)
        self.started = True
        no_body = head_request or status in (204, 304) or status < 200
        self.no_body = no_body
        line = _STATUS_LINE.get(status)
        parts = [f"HTTP/1.1 {status} Unknown\r\n" if line is None else line]
        length: int | None = None
        for name, value in headers:
            if len(name) in _SPECIAL_LENGTHS:
                lname = name.lower()
                if lname == "content-length":
                    if status not in (204, 304) and status >= 200:
                        length = int(value)
                    continue
                elif lname == "transfer-encoding":
                    continue
                elif lname == "connection":
                    if "close" in value.lower():
                        keep_alive = False
                    continue
            parts.append(f"{name}: {value}\r\n")
        if no_body:
            self.remaining = 0
            if length is not None:
                parts.append(f"Content-Length: {length}\r\n")
        elif length is not None:
            self.remaining = length
            parts.append(f"Content-Length: {length}\r\n")
        elif not http10:
            self.chunked = True
            parts.append("Transfer-Encoding: chunked\r\n")
        else:
            keep_alive = False  # HTTP/1.0 without a length: the end of the body is the close
        if keep_alive:
            if http10:
                parts.append("Connection: keep-alive\r\n")
        else:
            parts.append("Connection: close\r\n")
        self.keep_alive = keep_alive
        parts.append(f"Date: {date}\r\n\r\n")
        return "".join(parts).encode()

    def data(self, data: bytes) -> bytes:
        """Framed body bytes (b"" for bodiless responses).

        Raises:
            LocalProtocolError: more bytes than the declared Content-Length (our bug: 500).
        """
        if self.no_body or not data:
            return b""
        if self.chunked:
            return b"%x\r\n%s\r\n" % (len(data), data)
        if self.remaining is not None:
            if len(data) > self.remaining:
                raise LocalProtocolError("response body longer than its Content-Length", 500)
            self.remaining -= len(data)
        return data

    def end(self) -> bytes:
        """The end of the body; a short Content-Length body means the connection must close."""
        self.done = True
        if self.chunked:
            return b"0\r\n\r\n"
        if self.remaining:
            self.keep_alive = False
        return b""
