# Streaming multipart/form-data (RFC 7578): a sans-IO MultipartParser (bytes in, events out) and
# an async layer over the body seam (`multipart(req)`, the `form()` middleware). Part bodies
# stream through: only a header block and a delimiter-sized tail are buffered, and only what the
# caller keeps (fields, files it reads) is charged to the memory budget. No sockets, no clock.
from __future__ import annotations

import enum
import re
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote_to_bytes

from gateway.body.decoding import (
    BodyRequest,
    Middleware,
    Next,
    TypeOption,
    decoded_chunks,
    has_body,
    max_body_of,
    parse_content_type,
    parse_limit,
    type_checker,
    unsupported_charset,
)
from gateway.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

__all__ = [
    "Event",
    "MultipartParser",
    "MultipartReader",
    "Part",
    "PartData",
    "PartEnd",
    "PartStart",
    "UploadedFile",
    "form",
    "multipart",
]


@dataclass(frozen=True, slots=True)
class PartStart:
    """A part begins. ``filename`` is None for a plain field; ``headers`` has lower-case names."""

    name: str
    filename: str | None
    content_type: str
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class PartData:
    """A piece of the current part's body (never empty)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PartEnd:
    """The current part is complete."""


Event = PartStart | PartData | PartEnd

# RFC 2046 bchars, 1-70 of them, not ending in a space; none can be CR (see _partial_delimiter).
_BOUNDARY_RE = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_HEADER_NAME_RE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_VALUE_RE = re.compile(rb"[\x00\r\n]")
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_DISPOSITION_RE = re.compile(rf"\s*({_TOKEN})\s*")
_DISP_PARAM_RE = re.compile(rf';\s*({_TOKEN})\s*=\s*("[^"\\]*(?:\\.[^"\\]*)*"|{_TOKEN})\s*', re.S)
_TRAILER_RE = re.compile(r";?\s*")
_EXT_VALUE_RE = re.compile(r"([!#$&+\-.^_`|~0-9A-Za-z]+)'[^']*'(.*)", re.S)
# The WHATWG multipart/form-data encoder escapes these three in names and filenames.
_NAME_ESCAPES_RE = re.compile(r"%(22|0D|0A)", re.IGNORECASE)


class _State(enum.Enum):
    PREAMBLE = "preamble"
    DELIMITER = "delimiter"
    HEADERS = "headers"
    BODY = "body"
    EPILOGUE = "epilogue"
    CLOSED = "closed"


# the members as module names: an enum member is a slow lookup on Python 3.11 (its metaclass),
# and the parser compares states for every chunk
_PREAMBLE: Final = _State.PREAMBLE
_DELIMITER: Final = _State.DELIMITER
_HEADERS: Final = _State.HEADERS
_BODY: Final = _State.BODY
_EPILOGUE: Final = _State.EPILOGUE
_CLOSED: Final = _State.CLOSED


def _malformed(why: str) -> BadRequest:
    return BadRequest(message=f"malformed part headers: {why}")


def _decode_header_value(value: bytes) -> str:
    try:
        return value.decode("utf-8")  # what browsers send for non-ASCII filenames
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _parse_headers(block: bytes, max_pairs: int) -> dict[str, str]:
    headers: dict[str, str] = {}
    if not block:
        return headers
    lines = block.split(b"\r\n")
    if len(lines) > max_pairs:
        raise PayloadTooLarge(message=f"too many part headers (limit {max_pairs})")
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep or _HEADER_NAME_RE.fullmatch(name) is None or _BAD_VALUE_RE.search(value):
            raise _malformed("bad header line")
        key = name.decode("ascii").lower()
        text = _decode_header_value(value.strip(b" \t"))
        if key not in headers:
            headers[key] = text
        elif key in ("content-disposition", "content-type"):
            raise _malformed(f"repeated {key}")
        else:
            headers[key] += ", " + text
    return headers


def _unescape_name(value: str) -> str:
    return _NAME_ESCAPES_RE.sub(lambda m: {"22": '"', "0d": "\r", "0a": "\n"}[m[1].lower()], value)


def _basename(filename: str) -> str:
    # Like busboy (preservePath false): old browsers send full client paths.
    return re.split(r"[\\/]", filename)[-1]


def _parse_disposition(value: str) -> tuple[str, str | None]:
    m = _DISPOSITION_RE.match(value)
    if m is None or m.group(1).lower() != "form-data":
        raise _malformed("Content-Disposition is not form-data")
    params: dict[str, str] = {}
    pos = m.end()
    while (p := _DISP_PARAM_RE.match(value, pos)) is not None:
        key, v = p.group(1).lower(), p.group(2)
        if v.startswith('"'):
            v = v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        if key in params:
            raise _malformed(f"repeated Content-Disposition parameter {key!r}")
        params[key] = v
        pos = p.end()
    if _TRAILER_RE.fullmatch(value, pos) is None:
        raise _malformed("bad Content-Disposition parameters")
    if "name" not in params:
        raise _malformed("Content-Disposition has no name")
    filename: str | None = None
    if "filename*" in params:  # RFC 8187 ext-value wins over filename
        ext = _EXT_VALUE_RE.fullmatch(params["filename*"])
        charset = ext.group(1).lower() if ext else ""
        if ext is None or charset not in ("utf-8", "iso-8859-1"):
            raise _malformed("bad filename*")
        try:
            filename = unquote_to_bytes(ext.group(2)).decode(charset)
        except UnicodeDecodeError:
            raise _malformed("bad filename*") from None
    elif "filename" in params:
        filename = _unescape_name(params["filename"])
    return _unescape_name(params["name"]), None if filename is None else _basename(filename)


class MultipartParser:
    """Sans-IO multipart/form-data parser: ``feed(bytes) -> events``, then ``close()``.

    Theory of operation: states PREAMBLE -> DELIMITER -> HEADERS -> BODY -> DELIMITER -> ...
    -> EPILOGUE, moved only by ``feed``. The delimiter is CRLF "--" boundary; a virtual CRLF
    before the first byte lets the opening delimiter be found like the others, so a preamble
    is skipped. In BODY each feed searches the new bytes once and emits everything except a
    tail that could still start a delimiter (at most len(boundary)+3 bytes, found with one
    rfind for CR: the delimiter holds exactly one CR), so work is linear and the buffer bounded
    even when fed one byte at a time. Header blocks are buffered up to ``max_header_bytes``.

    Args:
        boundary: the Content-Type boundary parameter (1-70 RFC 2046 characters).
        max_parts: most parts.
        max_field_bytes: most body bytes of a part without a filename.
        max_header_pairs: most header lines in one part.
        max_header_bytes: most bytes of one part's header block.
        max_file_bytes: most body bytes of a file part (None: only the body limit applies).

    Raises:
        BadRequest: 400, an invalid boundary.
    """

    __slots__ = (
        "_delim",
        "_buf",
        "_head",
        "_state",
        "_scan_from",
        "_parts",
        "_name",
        "_is_file",
        "_part_bytes",
        "_max_parts",
        "_max_field_bytes",
        "_max_header_pairs",
        "_max_header_bytes",
        "_max_file_bytes",
    )

    def __init__(
        self,
        boundary: bytes,
        *,
        max_parts: int = 100,
        max_field_bytes: int = 100_000,
        max_header_pairs: int = 20,
        max_header_bytes: int = 8192,
        max_file_bytes: int | None = None,
    ) -> None:
        if _BOUNDARY_RE.fullmatch(boundary) is None:
            raise BadRequest(message="invalid multipart boundary")
        self._delim = b"\r\n--" + boundary
        self._buf = b"\r\n"
        self._head = bytearray()
        self._state = _PREAMBLE
        self._scan_from = 0
        self._parts = 0
        self._name = ""
        self._is_file = False
        self._part_bytes = 0
        self._max_parts = max_parts
        self._max_field_bytes = max_field_bytes
        self._max_header_pairs = max_header_pairs
        self._max_header_bytes = max_header_bytes
        self._max_file_bytes = max_file_bytes

    @property
    def done(self) -> bool:
        """True once the closing delimiter has been seen."""
        return self._state in (_EPILOGUE, _CLOSED)

    def buffered_bytes(self) -> int:
        """How many bytes are held between feeds (for tests and statistics)."""
        return len(self._buf) + len(self._head)

    def feed(self, data: bytes) -> list[Event]:
        """Parse more of the body.

        Args:
            data: the next bytes, any size (also empty or one byte).

        Returns:
            The events completed by these bytes, in order.

        Raises:
            BadRequest: 400, malformed delimiter line or part headers.
            PayloadTooLarge: 413, too many parts or headers, headers too large, a field or file
                over its limit.
            RuntimeError: called after ``close()``.
        """
        if self._state is _CLOSED:
            raise RuntimeError("feed() after close()")
        if self._state is _EPILOGUE:
            return []
        buf: bytes | bytearray
        if self._head:  # an unfinished header block grows in place: linear, not quadratic
            self._head += data
            buf = self._head
        else:
            buf = self._buf + data if self._buf else data
        delim = self._delim
        events: list[Event] = []
        while True:
            state = self._state
            if state is _BODY:
                i = buf.find(delim)
                if i < 0:
                    cut = len(buf) - self._partial_delimiter(buf)
                    if cut:
                        self._data(bytes(buf[:cut]), events)
                        buf = buf[cut:]
                    break
                if i:
                    self._data(bytes(buf[:i]), events)
                events.append(PartEnd())
                buf = buf[i + len(delim) :]
                self._state = _DELIMITER
            elif state is _PREAMBLE:
                i = buf.find(delim)
                if i < 0:
                    buf = buf[len(buf) - self._partial_delimiter(buf) :]
                    break
                buf = buf[i + len(delim) :]
                self._state = _DELIMITER
            elif state is _DELIMITER:
                if len(buf) < 2:
                    break
                if buf.startswith(b"--"):
                    buf = b""
                    self._state = _EPILOGUE
                    break
                if not buf.startswith(b"\r\n"):
                    raise BadRequest(message="malformed multipart delimiter line")
                buf = buf[2:]
                self._state = _HEADERS
                self._scan_from = 0
            elif state is _HEADERS:
                if buf.startswith(b"\r\n"):
                    block, buf = b"", bytes(buf[2:])
                else:
                    j = buf.find(b"\r\n\r\n", self._scan_from)
                    if j < 0 and len(buf) <= self._max_header_bytes:
                        self._scan_from = max(0, len(buf) - 3)
                        self._head = buf if isinstance(buf, bytearray) else bytearray(buf)
                        buf = b""
                        break
                    if j < 0 or j > self._max_header_bytes:
                        limit = self._max_header_bytes
                        raise PayloadTooLarge(
                            message=f"part headers too large (limit {limit} bytes)"
                        )
                    block, buf = bytes(buf[:j]), bytes(buf[j + 4 :])
                self._head = bytearray()
                events.append(self._start_part(block))
                self._state = _BODY
            else:  # EPILOGUE: ignored
                buf = b""
                break
        self._buf = bytes(buf)  # always bytes here: a no-op
        return events

    def close(self) -> None:
        """Declare the end of the body.

        Raises:
            BadRequest: 400, the body had no opening delimiter or ended before the closing one.
        """
        state, self._state, self._buf, self._head = self._state, _CLOSED, b"", bytearray()
        if state is _PREAMBLE:
            raise BadRequest(message="malformed multipart body: missing boundary delimiter")
        if state not in (_EPILOGUE, _CLOSED):
            raise BadRequest(message="truncated multipart body")

    def _partial_delimiter(self, buf: bytes | bytearray) -> int:
        # Length of the longest suffix of buf that is a proper prefix of the delimiter.
        # The delimiter's only CR is its first byte, so only the last CR can start one.
        k = buf.rfind(b"\r", max(0, len(buf) - len(self._delim) + 1))
        if k < 0 or not self._delim.startswith(buf[k:]):
            return 0
        return len(buf) - k

    def _data(self, chunk: bytes, events: list[Event]) -> None:
        self._part_bytes += len(chunk)
        if self._is_file:
            if self._max_file_bytes is not None and self._part_bytes > self._max_file_bytes:
                limit = self._max_file_bytes
                raise PayloadTooLarge(
                    message=f"file '{self._name}' too large (limit {limit} bytes)"
                )
        elif self._part_bytes > self._max_field_bytes:
            limit = self._max_field_bytes
            raise PayloadTooLarge(message=f"field '{self._name}' too large (limit {limit} bytes)")
        events.append(PartData(chunk))

    def _start_part(self, block: bytes) -> PartStart:
        self._parts += 1
        if self._parts > self._max_parts:
            raise PayloadTooLarge(message=f"too many parts (limit {self._max_parts})")
        headers = _parse_headers(block, self._max_header_pairs)
        disposition = headers.get("content-disposition")
        if disposition is None:
            raise _malformed("no Content-Disposition")
        name, filename = _parse_disposition(disposition)
        self._name, self._is_file, self._part_bytes = name, filename is not None, 0
        return PartStart(name, filename, headers.get("content-type", "text/plain"), headers)


class Part:
    """One part of a multipart body, streamed from the request.

    ``async for chunk in part`` streams it (nothing is kept); ``await part.read()`` keeps it,
    charged to the memory budget; ``await part.text()`` decodes it. Moving to the next part
    drains whatever of this one was not consumed.
    """

    __slots__ = (
        "name",
        "filename",
        "content_type",
        "headers",
        "_reader",
        "_done",
        "_started",
        "_data",
    )

    def __init__(self, reader: MultipartReader, start: PartStart) -> None:
        self.name = start.name
        self.filename = start.filename
        self.content_type = start.content_type
        self.headers = start.headers
        self._reader = reader
        self._done = False
        self._started = False
        self._data: bytes | None = None

    def __aiter__(self) -> Part:
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        self._started = True
        chunk = await self._reader._part_chunk()
        if chunk is None:
            self._done = True
            raise StopAsyncIteration
        return chunk

    async def read(self) -> bytes:
        """Read the whole part (once; later calls return the same bytes).

        Returns:
            The part's body.

        Raises:
            RuntimeError: the part was already streamed or drained.
            BudgetExceeded: 503, the memory budget is exhausted.
            HTTPError: body or multipart errors (413, 400, ...).
        """
        if self._data is not None:
            return self._data
        if self._started:
            raise RuntimeError(f"part {self.name!r} was already consumed")
        chunks: list[bytes] = []
        try:
            async for chunk in self:
                self._reader._req.reserve(len(chunk))
                chunks.append(chunk)
        except BaseException:
            chunks.clear()  # the error's traceback holds this frame: keep no bytes in it
            raise
        self._data = b"".join(chunks)
        return self._data

    async def text(self) -> str:
        """Read the part and decode it with its charset (default utf-8).

        Returns:
            The decoded text.

        Raises:
            UnsupportedMediaType: 415, an unknown charset.
            BadRequest: 400, bytes invalid in the charset.
        """
        parsed = parse_content_type(self.content_type)
        charset = (parsed[1].get("charset") if parsed else None) or "utf-8"
        data = await self.read()
        try:
            return data.decode(charset)
        except LookupError:
            raise unsupported_charset(charset) from None
        except UnicodeDecodeError:
            raise BadRequest(message=f"field '{self.name}' is not valid {charset}") from None

    async def _drain(self) -> None:
        async for _ in self:
            pass


class MultipartReader:
    """``async for part in reader`` over a multipart body; made by ``multipart()``.

    Also an async context manager whose exit closes the underlying body stream.
    """

    __slots__ = ("_req", "_parser", "_chunks", "_events", "_current", "_finished")

    def __init__(
        self, req: BodyRequest, parser: MultipartParser, chunks: AsyncGenerator[bytes, None]
    ) -> None:
        self._req = req
        self._parser = parser
        self._chunks = chunks
        self._events: deque[Event] = deque()
        self._current: Part | None = None
        self._finished = False

    def __aiter__(self) -> MultipartReader:
        return self

    async def __anext__(self) -> Part:
        if self._current is not None and not self._current._done:
            await self._current._drain()
        self._current = None
        while (event := await self._next_event()) is not None:
            if isinstance(event, PartStart):
                self._current = Part(self, event)
                return self._current
        raise StopAsyncIteration

    async def __aenter__(self) -> MultipartReader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop reading the body (the rest is left for the connection to drain)."""
        await self._chunks.aclose()

    async def _part_chunk(self) -> bytes | None:
        event = await self._next_event()
        return event.data if isinstance(event, PartData) else None

    async def _next_event(self) -> Event | None:
        while not self._events:
            if self._finished:
                return None
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                self._finished = True
                self._parser.close()
                continue
            try:
                self._events.extend(self._parser.feed(chunk))
            except BaseException:
                # A parser error leaves the body stream suspended: close it now rather than
                # leave it to the garbage collector (errors raised inside it already did).
                self._finished = True
                await self._chunks.aclose()
                raise
        return self._events.popleft()


def multipart(
    req: BodyRequest,
    *,
    limit: int | str | None = None,
    max_parts: int = 100,
    max_field_bytes: int = 100_000,
    max_file_bytes: int | None = None,
    max_header_pairs: int = 20,
    max_header_bytes: int = 8192,
    inflate: bool = True,
) -> MultipartReader:
    """Stream the parts of a multipart/form-data request: ``async for part in multipart(req)``.

    Args:
        req: the request (body source seam).
        limit: most decoded body bytes; None means the request's max body (route or mode).
        max_parts, max_field_bytes, max_file_bytes, max_header_pairs, max_header_bytes: see
            ``MultipartParser``.
        inflate: decode a gzip/deflate Content-Encoding.

    Returns:
        A ``MultipartReader`` (async iterator of ``Part``, async context manager).

    Raises:
        UnsupportedMediaType: 415, the Content-Type is not multipart/form-data.
        BadRequest: 400, missing or invalid boundary. Iteration raises the parser's and the
            body's errors (400, 413, 415, 503).
    """
    header = req.get("content-type") or ""
    parsed = parse_content_type(header)
    if not header.strip().lower().startswith("multipart/form-data"):
        raise UnsupportedMediaType(message="expected a multipart/form-data body")
    if parsed is None:
        raise BadRequest(message="malformed multipart Content-Type")
    boundary = parsed[1].get("boundary")
    if not boundary:
        raise BadRequest(message="missing boundary")
    try:
        boundary_bytes = boundary.encode("ascii")
    except UnicodeEncodeError:
        raise BadRequest(message="invalid multipart boundary") from None
    parser = MultipartParser(
        boundary_bytes,
        max_parts=max_parts,
        max_field_bytes=max_field_bytes,
        max_header_pairs=max_header_pairs,
        max_header_bytes=max_header_bytes,
        max_file_bytes=max_file_bytes,
    )
    max_bytes = max_body_of(req) if limit is None else parse_limit(limit)
    return MultipartReader(req, parser, decoded_chunks(req, max_bytes, inflate=inflate))


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file part kept in memory by ``form(keep_files=True)``."""

    name: str
    filename: str
    content_type: str
    headers: dict[str, str]
    data: bytes


def _add(fields: dict[str, Any], name: str, value: Any) -> None:
    old = fields.get(name)
    if name not in fields:
        fields[name] = value
    elif isinstance(old, list):
        old.append(value)
    else:
        fields[name] = [old, value]


def form(
    *,
    limit: int | str | None = None,
    type: TypeOption = "multipart/form-data",
    on_file: Callable[[Part], Awaitable[None]] | None = None,
    keep_files: bool = False,
    max_files: int = 10,
    max_parts: int = 100,
    max_field_bytes: int = 100_000,
    max_file_bytes: int | None = None,
    max_header_pairs: int = 20,
    max_header_bytes: int = 8192,
    inflate: bool = True,
) -> Middleware:
    """Middleware that parses multipart/form-data fields into ``req.body``.

    Fields without a filename become ``str`` values (repeated names: a list). A file part is
    given to ``on_file(part)`` (what it leaves unread is drained); else, with ``keep_files``,
    read into an ``UploadedFile`` stored in ``req.body`` under its field name; else refused.

    Args:
        limit: most decoded body bytes; None means the request's max body (route or mode).
        type: Content-Types to parse (see bodyparsers.type_checker).
        on_file: async callback for each file part; wins over ``keep_files``.
        keep_files: keep file parts in memory (charged to the memory budget).
        max_files: most files kept with ``keep_files``.
        max_parts, max_field_bytes, max_file_bytes, max_header_pairs, max_header_bytes: see
            ``MultipartParser``.
        inflate: decode a gzip/deflate Content-Encoding.

    Returns:
        ``async (req, res, next)``; skips like the other body parsers and sets ``body_parsed``.

    Raises:
        ValueError: a bad ``limit`` (at creation). The middleware raises BadRequest (400:
        malformed body, boundary, or an unexpected file part), PayloadTooLarge/BodyTooLarge
        (413), UnsupportedMediaType (415), BudgetExceeded (503).
    """
    max_bytes = None if limit is None else parse_limit(limit)
    should_parse = type_checker(type)

    async def form_parser(req: BodyRequest, res: Any, next: Next) -> None:
        if not (req.body_parsed or not has_body(req) or not should_parse(req)):
            req.body_parsed = True
            fields: dict[str, Any] = {}
            kept = 0
            reader = multipart(
                req,
                limit=max_bytes,
                max_parts=max_parts,
                max_field_bytes=max_field_bytes,
                max_file_bytes=max_file_bytes,
                max_header_pairs=max_header_pairs,
                max_header_bytes=max_header_bytes,
                inflate=inflate,
            )
            async with reader:
                async for part in reader:
                    if part.filename is None:
                        _add(fields, part.name, await part.text())
                    elif on_file is not None:
                        await on_file(part)
                    elif keep_files:
                        kept += 1
                        if kept > max_files:
                            raise PayloadTooLarge(message=f"too many files (limit {max_files})")
                        data = await part.read()
                        upload = UploadedFile(
                            part.name, part.filename, part.content_type, part.headers, data
                        )
                        _add(fields, part.name, upload)
                    else:
                        raise BadRequest(message=f"unexpected file field '{part.name}'")
            req.body = fields
        await next()

    return form_parser
