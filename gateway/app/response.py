# The response object handlers use (EdgerOS WebResponse / Express res), the same for HTTP and
# Sails virtual requests. Header values are validated when set (no CR/LF: response splitting is
# refused at the source). A small response goes out as ONE write (head + body) through the sink.
# A transport that carries values (a Sails JWR: gateway.app.contracts.ValueSink) gets send()/json()
# bodies as the values themselves, with only the headers the application set.
# Must not: touch sockets or files directly: bytes leave through a ResponseSink the transport
# provides (the HTTP session, or the virtual-request collector of a WebSocket).
from __future__ import annotations

import enum
import json as _json
import os
import re
import stat
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import quote

from gateway.errors import REASONS, Forbidden, HTTPError, NotFound
from gateway.http.dates import http_date, parse_http_date

if TYPE_CHECKING:
    from gateway.app.contracts import ResponseSink, ValueSink

__all__ = ["Response", "MIME_TYPES", "JSONSeqWriter", "NO_BODY", "NoBody"]


class NoBody(enum.Enum):
    """Type of NO_BODY: a reply without a body (a JWR without ``body``: the client sees
    ``undefined``), as opposed to a body that is JSON ``null``."""

    NO_BODY = 0


# what a ValueSink (gateway.app.contracts) is given for res.end(), res.send() and HEAD
NO_BODY: Final = NoBody.NO_BODY

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

MIME_TYPES: dict[str, str] = {
    "html": "text/html; charset=utf-8",
    "htm": "text/html; charset=utf-8",
    "text": "text/plain; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "json": "application/json; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "mjs": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "xml": "application/xml",
    "svg": "image/svg+xml",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "ico": "image/x-icon",
    "webp": "image/webp",
    "wasm": "application/wasm",
    "pdf": "application/pdf",
    "bin": "application/octet-stream",
    "gz": "application/gzip",
    "tar": "application/x-tar",
    "zip": "application/zip",
    "csv": "text/csv; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "woff2": "font/woff2",
    "map": "application/json; charset=utf-8",
    "json-seq": "application/json-seq",
}
_FILE_CHUNK = 65536


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray)):
        return obj.decode("utf-8", "replace")
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


# one encoder for every response: json.dumps with options builds a new one per call
_ENCODER = _json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
)


def _dumps(obj: Any) -> bytes:
    return _ENCODER.encode(obj).encode()


def check_header(name: str, value: str) -> None:
    """Refuse header names that are not tokens and values with CR, LF or other controls.

    Raises:
        ValueError: the header would break the response framing (response splitting).
    """
    if not _TOKEN.match(name):
        raise ValueError(f"invalid header name {name!r}")
    if _BAD_VALUE.search(value):
        raise ValueError(f"invalid header value for {name!r}: control characters (CR/LF)")


class Response:
    """One response. Chainable setters; ``send``/``json``/``end``/``send_file`` are async.

    Args:
        sink: the transport's ResponseSink.
    """

    __slots__ = (
        "_sink",
        "status_code",
        "_headers",
        "headers_sent",
        "finished",
        "locals",
        "bytes_sent",
        "_streaming",
        "req",
    )

    def __init__(self, sink: ResponseSink) -> None:
        self._sink = sink
        self.status_code = 200
        self._headers: dict[str, tuple[str, str | list[str]]] = {}
        self.headers_sent = False
        self.finished = False
        self.locals: dict[str, Any] = {}
        self.bytes_sent = 0
        self._streaming = False
        self.req: Any = None  # the Request, set by the App (Express res.req)

    # -- head -------------------------------------------------------------------------------
    def status(self, code: int) -> Response:
        if not 100 <= int(code) <= 999:
            raise ValueError(f"invalid status code {code!r}")
        self.status_code = int(code)
        return self

    def set(self, field: str | Mapping[str, str], value: str | list[str] | None = None) -> Response:
        """Set one header (or several from a mapping); a list value sends the field repeatedly."""
        if isinstance(field, Mapping):
            for k, v in field.items():
                self.set(k, v)
            return self
        if value is None:
            raise ValueError("header value missing")
        if isinstance(value, list):
            for v in value:
                check_header(field, str(v))
            self._headers[field.lower()] = (field, [str(v) for v in value])
        else:
            value = str(value)
            check_header(field, value)
            self._headers[field.lower()] = (field, value)
        return self

    header = set

    def append(self, field: str, value: str) -> Response:
        check_header(field, value)
        old = self._headers.get(field.lower())
        if old is None:
            self._headers[field.lower()] = (field, value)
        else:
            prev = old[1] if isinstance(old[1], list) else [old[1]]
            self._headers[field.lower()] = (old[0], [*prev, value])
        return self

    def get(self, field: str) -> str | list[str] | None:
        item = self._headers.get(field.lower())
        return item[1] if item else None

    def remove_header(self, field: str) -> Response:
        self._headers.pop(field.lower(), None)
        return self

    def type(self, value: str) -> Response:
        """Content-Type from an extension (``json``, ``.html``) or a full type."""
        if "/" not in value:
            value = MIME_TYPES.get(value.lstrip(".").lower(), "application/octet-stream")
        return self.set("Content-Type", value)

    content_type = type

    def location(self, url: str) -> Response:
        return self.set("Location", quote(url, safe="/:?#[]@!$&'()*+,;=%~"))

    def cookie(
        self,
        name: str,
        value: str,
        *,
        max_age: int | None = None,
        expires: float | None = None,
        path: str = "/",
        domain: str | None = None,
        secure: bool = False,
        http_only: bool = True,
        same_site: str | None = "Lax",
    ) -> Response:
        """Add a Set-Cookie (value percent-encoded like Express)."""
        if not _TOKEN.match(name):
            raise ValueError(f"invalid cookie name {name!r}")
        parts = [f"{name}={quote(str(value), safe='')}"]
        if max_age is not None:
            parts.append(f"Max-Age={int(max_age)}")
            if expires is None:
                expires = time.time() + max_age
        if expires is not None:
            parts.append("Expires=" + http_date(expires))
        if domain:
            parts.append(f"Domain={domain}")
        if path:
            parts.append(f"Path={path}")
        if secure:
            parts.append("Secure")
        if http_only:
            parts.append("HttpOnly")
        if same_site:
            parts.append(f"SameSite={same_site}")
        return self.append("Set-Cookie", "; ".join(parts))

    def clear_cookie(self, name: str, *, path: str = "/", domain: str | None = None) -> Response:
        return self.cookie(name, "", expires=0, path=path, domain=domain, max_age=None)

    def _head(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for name, value in self._headers.values():
            if isinstance(value, list):
                out.extend((name, v) for v in value)
            else:
                out.append((name, value))
        return out

    def _check_open(self) -> None:
        if self.finished or self.headers_sent and not self._streaming:
            raise RuntimeError("the response has already been sent")

    # -- body -------------------------------------------------------------------------------
    async def send(self, body: Any = None) -> None:
        """Send the whole response: str (text/html), bytes (octet-stream), dict/list (JSON)."""
        self._check_open()
        if self._streaming:
            raise RuntimeError("the response is being streamed: use write()/end()")
        if self._sink.carries_values:
            if body is None or isinstance(body, (str, bytes, bytearray, memoryview)):
                await self._send_value(NO_BODY if body is None else body)
                return
            return await self.json(body)
        h = self._headers
        if body is None:
            data = b""
        elif isinstance(body, str):
            data = body.encode()
            if "content-type" not in h:
                h["content-type"] = ("Content-Type", "text/html; charset=utf-8")
        elif isinstance(body, (bytes, bytearray, memoryview)):
            data = bytes(body)
            if "content-type" not in h:
                h["content-type"] = ("Content-Type", "application/octet-stream")
        else:
            return await self.json(body)
        await self._send_whole(data)

    async def json(self, obj: Any) -> None:
        """Send ``obj`` as JSON (application/json; charset=utf-8)."""
        self._check_open()
        if self._sink.carries_values:
            if isinstance(obj, str):
                # Sails' res.json(string): the JSON text, typed as JSON (the only header it adds)
                self.set("content-type", "application/json")
                obj = _ENCODER.encode(obj)
            await self._send_value(obj)
            return
        data = _dumps(obj)
        if "content-type" not in self._headers:
            self._headers["content-type"] = ("Content-Type", "application/json; charset=utf-8")
        await self._send_whole(data)

    async def _send_whole(self, data: bytes) -> None:
        status = self.status_code
        h = self._headers
        if status in (204, 304) or 100 <= status < 200:
            for k in ("content-type", "content-length", "transfer-encoding"):
                h.pop(k, None)
            data = b""
        else:
            h["content-length"] = ("Content-Length", str(len(data)))
        self.headers_sent = True
        self.finished = True
        sink = self._sink
        self.bytes_sent = 0 if sink.head_only else len(data)
        await sink.send_response(
            status, self._head(), None if sink.head_only or not data else data, True
        )

    async def _send_value(self, value: Any) -> None:
        # The whole reply as a value (a ValueSink): marked sent only once the sink took it, so
        # that a reply the transport refuses (too large, not serialisable) can still be
        # answered with an error by the exchange.
        self._check_open()
        sink = cast("ValueSink", self._sink)
        nbytes = await sink.send_value(self.status_code, self._head(), value)
        self.headers_sent = True
        self.finished = True
        self.bytes_sent = nbytes

    @property
    def carries_values(self) -> bool:
        """True when the transport carries bodies as values (a Sails JWR), not bytes."""
        return self._sink.carries_values

    async def accept_websocket(self, handler: Callable[..., Awaitable[None]],
                               options: dict[str, Any]) -> None:
        """Take the connection over as a WebSocket for ``handler`` (what a ws route does).

        Raises:
            HTTPError: 426 when the transport cannot switch protocols (not an Upgrade request
                over HTTP); the acceptor's own 400/403/503 (bad handshake, origin, too many).
        """
        # a WebSocketAcceptor (gateway.app.contracts): only an HTTP Upgrade request's sink is
        accept = getattr(self._sink, "accept_websocket", None)
        if accept is None:
            raise HTTPError(426, "WebSocket upgrade not possible here")
        await accept(self.req, self, handler, options)

    def clear_headers(self) -> Response:
        """Forget every header set so far (an error reply starts from a clean head)."""
        self._headers.clear()
        return self

    async def send_status(self, code: int) -> None:
        """Set the status and send its reason phrase as the body (Express sendStatus)."""
        self.status(code)
        if self._sink.carries_values:  # Sails' sendStatus: the text, no type of its own
            await self._send_value(REASONS.get(code, str(code)))
            return
        await self.type("text").send(REASONS.get(code, str(code)))

    async def redirect(self, url: str | int, status: int | str = 302) -> None:
        """Redirect: ``redirect(url)``, ``redirect(url, 301)`` or Express 4 ``redirect(301, url)``."""
        if isinstance(url, int):
            url, status = str(status), url
        self.location(str(url))
        self.status(int(status))
        loc = self.get("Location")
        if self._wants_html():
            await self.type("html").send(
                f"<p>{REASONS.get(int(status), 'Redirecting')}. "
                f"Redirecting to {_html_escape(str(loc))}</p>"
            )
        else:
            await self.type("text").send(
                f"{REASONS.get(int(status), 'Redirecting')}. Redirecting to {loc}"
            )

    def _wants_html(self) -> bool:
        req = self.req
        return bool(req is not None and req.accepts("text", "html") == "html")

    async def write(self, chunk: str | bytes) -> None:
        """Stream part of the body (chunked unless a Content-Length was set).

        Waits until the transport has taken the bytes (the socket's send buffer for HTTP), so a
        client that does not read blocks the writer instead of growing our memory; the
        connection's send timeout then closes it (the write raises or is cancelled). The first
        write sends the head and its chunk together.

        Raises:
            ClientDisconnected: the client went away.
            RuntimeError: the response was already sent.
        """
        if self.finished:
            raise RuntimeError("the response has already been sent")
        data = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
        sink = self._sink
        if not self.headers_sent:
            if "content-type" not in self._headers and not sink.carries_values:
                self._headers["content-type"] = ("Content-Type", "text/html; charset=utf-8")
            self.headers_sent = True
            self._streaming = True
            body = data if data and not sink.head_only else None
            if body:
                self.bytes_sent += len(body)
            await sink.send_response(self.status_code, self._head(), body, False)
            return
        if data and not sink.head_only:
            self.bytes_sent += len(data)
            await sink.send_data(data)

    async def end(self, chunk: str | bytes | None = None) -> None:
        """Finish the response (optionally with a last chunk)."""
        if self.finished:
            raise RuntimeError("the response has already been sent")
        if not self._streaming:
            if self._sink.carries_values:
                await self._send_value(NO_BODY if chunk is None else chunk)
            elif chunk is None:
                await self._send_whole(b"")
            else:
                data = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
                await self._send_whole(data)
            return
        if chunk:
            await self.write(chunk)
        self.finished = True
        await self._sink.end()

    def json_seq(self) -> JSONSeqWriter:
        """A writer for JSON text sequences (RFC 7464): one flushed ``RS json LF`` per value."""
        return JSONSeqWriter(self)

    async def send_file(
        self,
        path: str,
        *,
        root: str | None = None,
        max_age_s: int = 0,
        if_none_match: str | None = None,
        if_modified_since: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Stream a file from disk with Content-Type, ETag, Last-Modified and 304 handling.

        Args:
            path: absolute, or relative to ``root``.
            root: the directory the file must stay inside (``..`` and symlink escapes: 403).
            if_none_match, if_modified_since: the request's conditional headers (the
                application passes them through ``req``; see App helpers).
        Raises:
            Forbidden, NotFound.
        """
        req = self.req
        if req is not None:
            if if_none_match is None:
                if_none_match = req.get("if-none-match")
            if if_modified_since is None:
                if_modified_since = req.get("if-modified-since")
        real = _resolve(path, root)
        try:
            st = os.stat(real)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound() from None
        except PermissionError:
            raise Forbidden() from None
        if not stat.S_ISREG(st.st_mode):
            raise NotFound()
        etag = f'W/"{st.st_size:x}-{int(st.st_mtime * 1000):x}"'
        self.set("ETag", etag)
        self.set("Last-Modified", http_date(st.st_mtime))
        self.set("Cache-Control", f"public, max-age={max_age_s}")
        if headers:
            self.set(headers)
        if "content-type" not in self._headers:
            ext = os.path.splitext(real)[1].lstrip(".").lower()
            self.type(MIME_TYPES.get(ext, "application/octet-stream"))
        if _not_modified(etag, st.st_mtime, if_none_match, if_modified_since):
            self.status(304)
            await self._send_whole(b"")
            return
        self._headers["content-length"] = ("Content-Length", str(st.st_size))
        self.headers_sent = True
        self.finished = True
        sink = self._sink
        if sink.head_only or st.st_size == 0:
            await sink.send_response(self.status_code, self._head(), None, True)
            return
        await sink.send_response(self.status_code, self._head(), None, False)
        self.bytes_sent = st.st_size
        await sink.send_file(real, st.st_size)


class JSONSeqWriter:
    """RFC 7464 writer (``application/json-seq``): each value goes out as 0x1E + JSON + 0x0A,
    sent on its own, so a reader gets every record as soon as it is produced.

    ``async with res.json_seq() as seq: await seq.send(value)``; leaving the block normally
    ends the response. When the client goes away, ``send`` raises ClientDisconnected (the
    producer stops; the connection ends quietly). On any other exception the response is left
    unterminated, which tells the client the sequence is incomplete.
    """

    __slots__ = ("_res",)

    def __init__(self, res: Response) -> None:
        self._res = res
        if not res.headers_sent and res.get("content-type") is None:
            res.set("Content-Type", "application/json-seq")

    async def send(self, value: Any) -> None:
        """Send one record and wait until the transport has taken it.

        Raises:
            ClientDisconnected: the client went away.
            TypeError, ValueError: ``value`` is not JSON-serialisable (nothing was sent).
        """
        await self._res.write(b"\x1e" + _dumps(value) + b"\n")

    async def aclose(self) -> None:
        """End the response (once; later calls do nothing)."""
        if not self._res.finished:
            await self._res.end()

    async def __aenter__(self) -> JSONSeqWriter:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            await self.aclose()


def _resolve(path: str, root: str | None) -> str:
    if "\x00" in path:
        raise Forbidden()
    if root is None:
        if not os.path.isabs(path):
            raise ValueError("send_file needs an absolute path or a root")
        parts = path.split("/")
        if ".." in parts:
            raise Forbidden()
        return path
    rel = path.lstrip("/")
    if ".." in rel.replace("\\", "/").split("/"):
        raise Forbidden()
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, rel))
    if real != real_root and not real.startswith(real_root.rstrip("/") + "/"):
        raise Forbidden()  # a symlink pointing out of root
    return real


def _not_modified(etag: str, mtime: float, inm: str | None, ims: str | None) -> bool:
    if inm is not None:
        tags = [t.strip() for t in inm.split(",")]
        return "*" in tags or etag in tags or etag[2:] in tags
    if ims is not None:
        try:
            since = parse_http_date(ims)
            return since is not None and int(mtime) <= since
        except (TypeError, ValueError, IndexError, OverflowError):
            return False
    return False


def _html_escape(s: str) -> str:
    return (
        s.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


__all__ += ["check_header", "HTTPError"]
