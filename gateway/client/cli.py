# `gateway request`: one request from the command line in the httpie habit, over HTTP or as a
# Sails virtual request (--socket). Prints the status line, the headers and the body (JSON
# pretty-printed on a terminal, the raw bytes when piped), JSON-seq records one per line as
# they arrive, a progress bar on a terminal's stderr; exit codes from the seed-002 error codes.
# Owns: the request items grammar, output formatting, the exit codes. Must not: hold client
# logic (gateway.client.http / socket). Imported only by `gateway request` (lazily).
from __future__ import annotations

import json
import os
import sys
import time
from typing import IO, Any, Final

import trio

from gateway.client import jsonseq
from gateway.client.errors import ClientError, InvalidJSON, error_for_status

__all__ = ["main", "EXIT_CODES", "parse_items", "exit_code"]

# seed-002 code -> exit status: the code minus 490, so the last digit is the code's
# (1x: the exchange failed, 2x: the resource said no, 3x: the content is bad).
EXIT_CODES: Final = {501: 11, 502: 12, 503: 13, 504: 14, 510: 20, 511: 21, 520: 30}
USAGE_EXIT: Final = 2
METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
HELP_TAIL: Final = """
items (httpie style):
  Header:value     a request header            key==value   a query parameter
  key=value        a string field of the body  key:=json    a JSON field (number, list, ...)
  @path            the body is this file (streamed, with upload progress)
  The fields make a JSON object (--form: an urlencoded form); with fields and no METHOD the
  method is POST. URL may be ':8080/path' (127.0.0.1) or 'host/path' (http://).

exit status:
  0 a 2xx response   11 timed out (501)    12 transport error (502)   13 aborted (503)
  14 any other non-2xx status (504)        20 403 (510)   21 404 (511)
  30 invalid JSON in the body or a JSON-seq record (520)   2 usage error
"""


class Usage(Exception):
    """A command line that cannot be used (exit 2)."""


class Options:
    """The parsed command line."""

    def __init__(self) -> None:
        self.method: str | None = None
        self.url = ""
        self.headers: list[tuple[str, str]] = []
        self.params: list[tuple[str, str]] = []
        self.fields: dict[str, Any] = {}
        self.body_file: str | None = None
        self.form = False
        self.token: str | None = os.environ.get("GATEWAY_TOKEN") or None
        self.timeout: float | None = 30.0
        self.socket = False
        self.verify = True
        self.ca_file: str | None = None
        self.unix_socket: str | None = None
        self.follow = True
        self.output: str | None = None


_FLAGS: Final = {"--json", "--form", "--socket", "--insecure", "--no-follow"}
_VALUED: Final = {"--token", "--timeout", "--ca-file", "--unix-socket", "--output"}


def parse_items(items: list[str], opts: Options) -> None:
    """Sort request items into headers, query parameters, body fields and a body file.

    Raises:
        Usage: an item of none of the forms, or a bad ``:=`` JSON value.
    """
    for item in items:
        if item.startswith("@") and len(item) > 1:
            opts.body_file = item[1:]
            continue
        # the earliest separator decides (so a header value may hold '=' and a field ':')
        best: tuple[int, str] | None = None
        for sep in (":=", "==", "=", ":"):
            i = item.find(sep)
            if i > 0 and (
                best is None or i < best[0] or (i == best[0] and len(sep) > len(best[1]))
            ):
                best = (i, sep)
        if best is None:
            raise Usage(
                f"not a request item: {item!r} (Header:value, key==value, key=value, "
                "key:=json or @file)"
            )
        i, sep = best
        key, value = item[:i], item[i + len(sep) :]
        if sep == ":":
            opts.headers.append((key, value.strip()))
        elif sep == "==":
            opts.params.append((key, value))
        elif sep == "=":
            opts.fields[key] = value
        else:
            try:
                opts.fields[key] = json.loads(value)
            except ValueError:
                raise Usage(f"{key}:= needs a JSON value, got {value!r}") from None


def parse(argv: list[str]) -> Options | None:
    """Parse ``[METHOD] URL [items] [options]``; None when help was printed."""
    opts = Options()
    words: list[str] = []
    args = iter(argv)
    for word in args:
        if word in ("-h", "--help"):
            from gateway.commands import usage

            print(usage("request") + HELP_TAIL, end="")
            return None
        flag, eq, value = word.partition("=")
        if word in _FLAGS:
            if word == "--form":
                opts.form = True
            elif word == "--socket":
                opts.socket = True
            elif word == "--insecure":
                opts.verify = False
            elif word == "--no-follow":
                opts.follow = False
            continue
        if flag in _VALUED:
            if not eq:
                value = next(args, None)  # type: ignore[assignment]
                if value is None:
                    raise Usage(f"{flag} needs a value")
            if flag == "--token":
                opts.token = value
            elif flag == "--timeout":
                try:
                    opts.timeout = float(value) if value not in ("0", "none") else None
                except ValueError:
                    raise Usage(f"--timeout needs seconds, got {value!r}") from None
            elif flag == "--ca-file":
                opts.ca_file = value
            elif flag == "--unix-socket":
                opts.unix_socket = value
            else:
                opts.output = value
            continue
        if word.startswith("--") and len(word) > 2 and ":" not in word and "=" not in word:
            raise Usage(f"unknown option {word!r}")
        words.append(word)
    if words and words[0].upper() in METHODS and len(words) > 1:
        opts.method = words.pop(0).upper()
    if not words:
        raise Usage("a URL is required")
    url = words.pop(0)
    if url.startswith(":"):
        url = "http://127.0.0.1" + url
    elif "://" not in url:
        url = "http://" + url
    opts.url = url
    parse_items(words, opts)
    if opts.method is None:
        opts.method = "POST" if (opts.fields or opts.body_file) else "GET"
    return opts


def exit_code(error: ClientError | None, status: int | None = None) -> int:
    """The exit status for an outcome (see HELP_TAIL)."""
    if error is not None:
        return EXIT_CODES.get(error.code, 12)
    if status is None or 200 <= status < 300:
        return 0
    return EXIT_CODES[error_for_status(status).code]


class _Bar:
    """A progress bar on a terminal's stderr (nothing when stderr is not a terminal)."""

    def __init__(self, label: str, stream: IO[str]) -> None:
        self.label = label
        self.stream = stream
        self.on = stream.isatty()
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int | None) -> None:
        if not self.on:
            return
        now = time.monotonic()
        if now - self.last < 0.1 and (total is None or done < total):
            return
        self.last = now
        if total:
            width = 30
            filled = width * done // total
            text = (
                f"\r{self.label} [{'#' * filled}{' ' * (width - filled)}] "
                f"{100 * done // total:3d}% {_size(done)}/{_size(total)}"
            )
        else:
            text = f"\r{self.label} {_size(done)}"
        self.stream.write(text)
        self.stream.flush()
        self.shown = True

    def end(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)  # pragma: no cover


class _Out:
    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        # piped: stdout is the body alone; the status line and headers go to stderr
        self.head = sys.stdout if self.tty else sys.stderr

    def status(self, line: str, headers: list[tuple[str, str]]) -> None:
        self.head.write(line + "\n")
        for name, value in headers:
            self.head.write(f"{name}: {value}\n")
        self.head.write("\n")
        self.head.flush()

    def value(self, value: Any, pretty: bool) -> None:
        text = json.dumps(value, indent=2 if pretty else None, ensure_ascii=False)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def raw(self, data: bytes) -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


async def _http(opts: Options, out: _Out) -> int:
    from gateway.client.http import Client

    kwargs: dict[str, Any] = {"headers": opts.headers, "params": opts.params or None}
    if opts.body_file:
        kwargs["content"] = open(opts.body_file, "rb")  # noqa: ASYNC230, SIM115 (streamed)
        up = _Bar("upload", sys.stderr)
        kwargs["on_upload"] = up
    elif opts.fields:
        if opts.form:
            kwargs["data"] = {
                k: v if isinstance(v, str) else json.dumps(v) for k, v in opts.fields.items()
            }
        else:
            kwargs["json"] = opts.fields
    down = _Bar("download", sys.stderr)
    kwargs["on_download"] = down
    try:
        async with Client(
            token=opts.token,
            timeout=opts.timeout,
            verify=opts.verify,
            ca_file=opts.ca_file,
            unix_socket=opts.unix_socket,
            follow_redirects=opts.follow,
        ) as client:
            async with client.stream(opts.method or "GET", opts.url, **kwargs) as resp:
                if "on_upload" in kwargs:
                    kwargs["on_upload"].end()
                out.status(
                    f"HTTP/{resp.http_version} {resp.status} {resp.reason}",
                    [(n.decode("latin-1"), v.decode("latin-1")) for n, v in resp.headers.raw],
                )
                ctype = resp.content_type
                bad = 0
                if opts.output:
                    await resp.save(opts.output)
                    down.end()
                elif ctype in jsonseq.SEQ_TYPES or ctype in jsonseq.NDJSON_TYPES:

                    def invalid(err: InvalidJSON) -> None:
                        nonlocal bad
                        bad += 1
                        print(f"gateway: skipped: {err.message}", file=sys.stderr)

                    async for value in resp.values(on_invalid=invalid):
                        out.value(value, False)
                elif out.tty and (ctype == "application/json" or ctype.endswith("+json")):
                    body = await resp.read()
                    down.end()
                    try:
                        out.value(json.loads(body), True)
                    except ValueError:
                        out.raw(body)
                        print("gateway: the body is not valid JSON", file=sys.stderr)
                        bad += 1
                else:
                    async for chunk in resp.aiter_bytes():
                        out.raw(chunk)
                    down.end()
                    if out.tty:
                        sys.stdout.write("\n")
                if bad and resp.ok:
                    return EXIT_CODES[520]
                return exit_code(None, resp.status)
    finally:
        if opts.body_file:
            kwargs["content"].close()


async def _socket(opts: Options, out: _Out) -> int:
    from urllib.parse import urlencode, urlsplit

    from gateway.client.socket import open_socket

    parts = urlsplit(opts.url)
    target = parts.path or "/"
    query = parts.query
    if opts.params:
        query = (query + "&" if query else "") + urlencode(opts.params)
    if query:
        target += "?" + query
    if opts.body_file:
        raise Usage("--socket sends JSON data: @file bodies need HTTP")
    async with open_socket(
        f"{parts.scheme}://{parts.netloc}",
        token=opts.token,
        verify=opts.verify,
        ca_file=opts.ca_file,
        reconnect=False,
        request_timeout=opts.timeout,
    ) as io:
        jwr = await io.request(
            opts.method or "GET", target, opts.fields or None, headers=dict(opts.headers)
        )
    out.status(f"JWR {jwr.status_code}", sorted(jwr.headers.items()))
    if isinstance(jwr.body, str) and not out.tty:
        out.raw(jwr.body.encode("utf-8"))
    elif isinstance(jwr.body, str):
        sys.stdout.write(jwr.body + "\n")
    elif jwr.body is not None:
        out.value(jwr.body, out.tty)
    return exit_code(None, jwr.status_code)


def main(argv: list[str]) -> int:
    """Run ``gateway request ARGS``; returns the exit status."""
    try:
        opts = parse(argv)
        if opts is None:
            return 0
        out = _Out()
        return trio.run(_socket if opts.socket else _http, opts, out)
    except Usage as exc:
        print(
            f"gateway request: error: {exc}\n(gateway request --help for the forms)",
            file=sys.stderr,
        )
        return USAGE_EXIT
    except ClientError as exc:
        print(f"gateway: {exc.message} (error {exc.code})", file=sys.stderr)
        return exit_code(exc)
    except ValueError as exc:  # a bad URL
        print(f"gateway request: error: {exc}", file=sys.stderr)
        return USAGE_EXIT
    except OSError as exc:  # the @file
        print(f"gateway request: error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return USAGE_EXIT
    except KeyboardInterrupt:
        return 130
