# The engine of the differential harness: starts the real Express 5 / Sails 1.5 servers
# (tests/node/differential_servers.js) and the same apps on the gateway (port 0 on 127.0.0.1),
# sends every HTTP case as raw bytes to both and every socket case through the stock clients
# (tests/node/sails_client.js) to both, normalises what legitimately varies and classifies each
# case as equal, deliberate (docs/FIDELITY.md, twin in deliberate.py) or differing.
# Must not: change the gateway, skip a case, or hide a difference (normalisations are listed).
from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11
import trio

from gateway import App
from gateway.server.serve import Server
from gateway.settings import Settings, load_settings
from tests.differential.cases import (
    HTTP_CASES,
    SOCKET_CASES,
    SOCKET_SETUPS,
    HTTPCase,
    SocketCase,
    handshake_cookie,
)
from tests.differential.deliberate import DELIBERATE, Deliberate, expand, matches

NODE_DIR = Path(__file__).resolve().parent.parent / "node"
# What the harness needs from tests/node/node_modules (installed by `make node-deps`).
NODE_PACKAGES = (
    "express",
    "cookie-parser",
    "sails",
    "sails-hook-sockets",
    "sails.io.js",
    "sails.io.js-dist",
    "socket.io-client",
    "socket.io-client-v2",
    "ws",
)
# Response headers never compared: they vary by time, connection or framing (the body itself
# is compared). Each is listed in docs/FIDELITY.md under "What the harness normalises".
IGNORED_HEADERS = frozenset(
    {"date", "connection", "keep-alive", "content-length", "transfer-encoding", "etag"}
)
NO_BODY = "<no body>"
HTTP_CASE_TIMEOUT_S = 5.0
SOCKET_STEP_TIMEOUT_MS = 8000


class HarnessError(Exception):
    """The harness cannot run (Node, its packages or a server is missing): a test failure."""


# -- observations and their comparison ----------------------------------------------------------


@dataclass
class Observation:
    """What one server answered to one case, normalised for comparison."""

    status: int | None
    headers: dict[str, Any]  # compared headers (lower-case for HTTP; as sent in a JWR)
    body: Any  # parsed JSON when it is JSON, else text; NO_BODY when there is none
    error: str | None = None  # no reply, timeout, unparsable reply
    more: list[Observation] = field(default_factory=list)  # further replies (pipelining)
    note: str = ""  # not compared: e.g. a virtual request answered only when retried

    def __repr__(self) -> str:  # short: pytest prints it in failures
        return f"<Observation {self.summary()}>"

    def summary(self) -> str:
        if self.error:
            return f"error: {self.error}"
        return f"{self.status} {self.headers.get('content-type', '')}".strip()


@dataclass
class Outcome:
    """One case compared: ``status`` is "equal", "deliberate" or "differs"."""

    kind: str  # "http" or "socket"
    case_id: str  # e.g. "url-fragment"; for sockets with the set-up: "sk-basic@dist"
    app: str  # "express" or "sails"
    label: str  # what was sent, one line
    reference: Observation
    gateway: Observation
    diffs: dict[str, tuple[Any, Any]]
    status: str = "equal"
    deliberate: list[str] = field(default_factory=list)  # ids of the table rows that applied
    problems: list[str] = field(default_factory=list)  # why it is not equal/deliberate
    unexplained: list[str] = field(default_factory=list)  # difference keys no row explains

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.case_id}"

    def __repr__(self) -> str:
        return f"<Outcome {self.key} {self.status}>"

    def describe(self) -> str:
        """A readable per-case diff."""
        lines = [f"{self.key} [{self.app}] {self.label}: {self.status}"]
        if self.deliberate:
            lines.append(f"  deliberate rows applied: {', '.join(self.deliberate)}")
        for problem in self.problems:
            lines.append(f"  ! {problem}")
        for name, (ref, gw) in sorted(self.diffs.items()):
            if self.status == "differs" and name not in self.unexplained:
                continue  # explained by a table row: not what makes this case fail
            lines.append(f"  {name}:")
            lines.append(f"    {self.app:<8} {_short(ref)}")
            lines.append(f"    gateway  {_short(gw)}")
        return "\n".join(lines)


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


ABSENT: Any = _Absent()


def _short(value: Any, limit: int = 400) -> str:
    if value is ABSENT or value == NO_BODY or isinstance(value, str) and _ERROR_MARK.match(value):
        text = str(value)  # the harness's own markers, unquoted
    else:
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


_ERROR_MARK = re.compile(r"^<error .*>$", re.S)


def _comparable(value: Any) -> Any:
    """Values as compared: every "<error ...>" marker is one value (a field that raised on both
    sides is equal; its message, JavaScript or Python, is shown in diffs only)."""
    if isinstance(value, str) and _ERROR_MARK.match(value):
        return "<error>"
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    return value


def diff_values(path: str, ref: Any, gw: Any, out: dict[str, tuple[Any, Any]]) -> None:
    """Record the differences between two JSON-like values, one entry per differing dict key
    (recursively), so a difference names the exact field: ``body.get.Referer``."""
    if isinstance(ref, dict) and isinstance(gw, dict):
        for key in dict.fromkeys([*ref, *gw]):
            diff_values(f"{path}.{key}", ref.get(key, ABSENT), gw.get(key, ABSENT), out)
        return
    if _comparable(ref) != _comparable(gw) or type(_comparable(ref)) is not type(_comparable(gw)):
        out[path] = (ref, gw)


def compare(ref: Observation, gw: Observation) -> dict[str, tuple[Any, Any]]:
    """The differences between two observations, keyed "error", "status", "header:<name>",
    "body" or "body.<field>..." (dict bodies are compared field by field)."""
    out: dict[str, tuple[Any, Any]] = {}
    if ref.error != gw.error:
        out["error"] = (ref.error, gw.error)
    if ref.status != gw.status:
        out["status"] = (ref.status, gw.status)
    for name in dict.fromkeys([*ref.headers, *gw.headers]):
        a, b = ref.headers.get(name, ABSENT), gw.headers.get(name, ABSENT)
        if a != b:
            out[f"header:{name}"] = (a, b)
    diff_values("body", ref.body, gw.body, out)
    for i in range(max(len(ref.more), len(gw.more))):
        a = ref.more[i].summary() if i < len(ref.more) else ABSENT
        b = gw.more[i].summary() if i < len(gw.more) else ABSENT
        if a != b:
            out[f"reply{i + 2}"] = (a, b)
    return out


def classify(outcome: Outcome, table: Iterable[Deliberate] = DELIBERATE) -> Outcome:
    """Set ``outcome.status``: equal, deliberate (every difference explained, exactly as the
    table row says) or differs (anything unexplained, or a row whose difference is gone)."""
    covered: set[str] = set()
    for row in table:
        if not matches(row, outcome):
            continue
        outcome.deliberate.append(row.id)
        for expect, names in expand(row, outcome.diffs):
            if not names and expect.required:
                outcome.problems.append(
                    f"{row.id}: listed as differing in {expect.field}, but it does not differ"
                )
            for name in names:
                ref, gw = outcome.diffs[name]
                why = expect.check(ref, gw)
                if why:
                    outcome.problems.append(f"{row.id}: {name} differs otherwise: {why}")
                covered.add(name)
    unexplained = outcome.unexplained = [name for name in outcome.diffs if name not in covered]
    if outcome.problems or unexplained:
        outcome.status = "differs"
    elif outcome.diffs:
        outcome.status = "deliberate"
    else:
        outcome.status = "equal"
    return outcome


# -- normalisation ----------------------------------------------------------------------------


def _port_normaliser(ports: Iterable[int]) -> Callable[[str], str]:
    pattern = re.compile(r":(?:" + "|".join(str(p) for p in ports) + r")(?!\d)")
    return lambda s: pattern.sub(":PORT", s)


_COOKIE_DATE = re.compile(r"(Expires=)([A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} (\d{4}) [\d:]{8} GMT)")


def _normalise_text(s: str, ports: Callable[[str], str]) -> str:
    s = ports(s)
    # a cookie's expiry "now + max-age" depends on the second it was sent
    return _COOKIE_DATE.sub(
        lambda m: m.group(1) + ("<date>" if m.group(3) != "1970" else m.group(2)), s
    )


def _normalise(value: Any, ports: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return _normalise_text(value, ports)
    if isinstance(value, dict):
        return {_normalise_text(str(k), ports): _normalise(v, ports) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v, ports) for v in value]
    return value


def canonical_cookie(value: str) -> str:
    """A Set-Cookie value with its attributes in name order: their order carries no meaning
    (RFC 6265 section 5.2), only the pair and the set of attributes do."""
    pair, *attributes = (part.strip() for part in value.split(";"))
    return "; ".join([pair, *sorted((a for a in attributes if a), key=str.lower)])


def _body(data: bytes, content_type: str | None, ports: Callable[[str], str]) -> Any:
    if not data:
        return NO_BODY
    text = data.decode("utf-8", "replace")
    if content_type is not None and "json" in content_type.lower():
        try:
            return _normalise(json.loads(text), ports)
        except ValueError:
            pass
    return _normalise_text(text, ports)


def http_observation(
    status: int, headers: list[tuple[bytes, bytes]], body: bytes, ports: Callable[[str], str]
) -> Observation:
    """An HTTP reply as compared: repeated fields joined with ", " (Set-Cookie: a list)."""
    compared: dict[str, Any] = {}
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        if name in IGNORED_HEADERS:
            continue
        value = _normalise_text(raw_value.decode("latin-1"), ports)
        if name == "set-cookie":
            compared.setdefault(name, []).append(canonical_cookie(value))
        elif name in compared:
            compared[name] += ", " + value
        else:
            compared[name] = value
    ctype = compared.get("content-type")
    return Observation(status, compared, _body(body, ctype, ports))


# -- raw HTTP ---------------------------------------------------------------------------------


async def http_exchange(
    port: int, data: bytes, methods: list[str], ports: Callable[[str], str]
) -> Observation:
    """Send ``data`` on a new connection to 127.0.0.1:port and read ``len(methods)`` replies
    (parsed by h11 as a client would); the connection is closed after the last one."""
    conn = h11.Connection(h11.CLIENT)
    replies: list[Observation] = []
    error: str | None = None
    received = 0
    try:
        with trio.fail_after(HTTP_CASE_TIMEOUT_S):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(data)
                for method in methods:
                    if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                        conn.start_next_cycle()
                    conn.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
                    conn.send(h11.EndOfMessage())
                    status, headers, body = 0, [], bytearray()
                    while True:
                        event = conn.next_event()
                        if event is h11.NEED_DATA:
                            try:
                                chunk = await stream.receive_some(65536)
                            except trio.BrokenResourceError:
                                chunk = b""
                            received += len(chunk)
                            conn.receive_data(chunk)
                            continue
                        if isinstance(event, h11.InformationalResponse):
                            continue
                        if isinstance(event, h11.Response):
                            status, headers = event.status_code, list(event.headers)
                        elif isinstance(event, h11.Data):
                            body += event.data
                        elif isinstance(event, h11.EndOfMessage):
                            replies.append(http_observation(status, headers, bytes(body), ports))
                            break
                        elif isinstance(event, h11.ConnectionClosed):
                            raise EOFError
                    if conn.their_state is h11.MUST_CLOSE or conn.our_state is h11.MUST_CLOSE:
                        break
    except trio.TooSlowError:
        error = f"no complete reply within {HTTP_CASE_TIMEOUT_S} s (hang)"
    except EOFError:
        error = "connection closed without a (complete) reply"
    except h11.RemoteProtocolError as exc:
        # h11 reports a close before any reply as a protocol error: say what happened
        error = (
            "connection closed without any reply" if not received else f"unparsable reply: {exc}"
        )
    except OSError as exc:
        error = f"connection failed: {exc}"
    if not replies:
        return Observation(None, {}, NO_BODY, error or "no reply")
    first = replies[0]
    first.more = replies[1:]
    if error and len(replies) < len(methods):
        first.more.append(Observation(None, {}, NO_BODY, error))
    return first


def request_bytes(case: HTTPCase, port: int) -> bytes:
    """The bytes a case sends to a server listening on ``port``."""
    host = f"127.0.0.1:{port}".encode()
    if case.raw is not None:
        return case.raw.replace(b"{host}", host)
    lines = [f"{case.method} {case.target} HTTP/{case.version}".encode("latin-1")]
    if case.host:
        lines.append(b"Host: " + host)
    for name, value in case.headers:
        lines.append(name.encode("latin-1") + b": " + _header_value(value))
    names = {name.lower() for name, _ in case.headers}
    if case.body and not names & {"content-length", "transfer-encoding"}:
        lines.append(f"Content-Length: {len(case.body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + case.body


def _header_value(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


# -- servers ----------------------------------------------------------------------------------


def node_binary() -> str:
    """The node binary, after checking every package the harness needs.

    Raises:
        HarnessError: naming what is missing and how to install it.
    """
    node = shutil.which("node")
    if node is None:
        raise HarnessError(
            "node is not installed: the differential harness needs Node.js 18+ "
            "(`make test` installs the packages in tests/node with npm ci)"
        )
    missing = [p for p in NODE_PACKAGES if not (NODE_DIR / "node_modules" / p).is_dir()]
    if missing:
        raise HarnessError(
            f"tests/node/node_modules lacks {', '.join(missing)}: run "
            "`make node-deps` (npm ci in tests/node)"
        )
    return node


@dataclass
class ReferencePorts:
    express: int
    sails: int


@asynccontextmanager
async def reference_servers(node: str) -> AsyncIterator[ReferencePorts]:
    """Run tests/node/differential_servers.js for the duration of the block.

    Raises:
        HarnessError: it did not start (its error and the tail of its stderr are quoted).
    """
    with tempfile.TemporaryFile() as errors:
        proc = await trio.lowlevel.open_process(
            [node, str(NODE_DIR / "differential_servers.js")],
            cwd=str(NODE_DIR),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env={**os.environ, "NODE_ENV": "production"},
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            ready = await _ready_line(proc.stdout)
            if "express" not in ready or "sails" not in ready:
                errors.seek(0)
                tail = errors.read()[-3000:].decode("utf-8", "replace")
                raise HarnessError(
                    "the reference Express/Sails servers did not start: "
                    f"{ready.get('error', 'no ready line within 30 s')}\n{tail}"
                )
            yield ReferencePorts(int(ready["express"]), int(ready["sails"]))
        finally:
            with trio.move_on_after(5) as cleanup:
                cleanup.shield = True
                await proc.stdin.aclose()
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
                with trio.CancelScope(shield=True):
                    await proc.wait()


async def _ready_line(stdout: trio.abc.ReceiveStream) -> dict[str, Any]:
    """The first JSON object the reference servers print ({} if none within 30 s)."""
    buffer = b""
    with trio.move_on_after(30):
        while True:
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                try:
                    ready = json.loads(line)
                except ValueError:
                    continue
                if isinstance(ready, dict):
                    return ready
            chunk = await stdout.receive_some(4096)
            if not chunk:
                break
            buffer += chunk
    return {}


def gateway_settings() -> Settings:
    """The default profile (what a device runs) on port 0, access log off."""
    return load_settings(
        "default", overrides={"server.port": "0", "server.access_log": "false"}, env={}
    )


@asynccontextmanager
async def gateway_server(app: App) -> AsyncIterator[Server]:
    """Serve ``app`` on 127.0.0.1, port 0, for the duration of the block."""
    settings = gateway_settings()
    app.bind(settings)
    server = Server(app, settings)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()


# -- socket cases -----------------------------------------------------------------------------


async def run_socket_setup(
    node: str, setup: str, port: int, cases: list[SocketCase], ports: Callable[[str], str]
) -> dict[str, Observation]:
    """Run ``cases`` through the stock client of ``setup`` against 127.0.0.1:port, in order,
    on one socket. A request that gets no reply within SOCKET_STEP_TIMEOUT_MS is tried once
    more in a new client process (a busy machine is not a hang); when it fails again it is
    recorded as unanswered and the rest goes on (a hang costs one case, not the run)."""
    results: dict[str, Observation] = {}
    pending = list(cases)
    sdk = SOCKET_SETUPS[setup]
    failures: dict[str, str] = {}
    while pending:
        scenario = {
            "sdk": sdk,
            "timeout_ms": 120000,
            "step_timeout_ms": SOCKET_STEP_TIMEOUT_MS,
            "handshake_headers": {
                "Cookie": handshake_cookie(),
                "Origin": f"http://127.0.0.1:{port}",
            },
            "steps": [{"op": "request", "options": c.options()} for c in pending],
        }
        with trio.fail_after(180):
            proc = await trio.run_process(
                [
                    node,
                    str(NODE_DIR / "sails_client.js"),
                    f"http://127.0.0.1:{port}",
                    json.dumps(scenario),
                ],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                cwd=str(NODE_DIR),
            )
        lines = []
        for text in proc.stdout.decode().splitlines():
            try:
                lines.append(json.loads(text))
            except ValueError:
                continue
        answered = [line for line in lines if line.get("op") == "request" and "step" in line]
        for line in answered:
            case_id = pending[line["step"]].id
            results[case_id] = _jwr_observation(line, ports)
            if case_id in failures:
                results[case_id].note = f"answered when retried; first try: {failures[case_id]}"
        if any(line.get("done") for line in lines):
            break
        error = (
            next((line["error"] for line in lines if "error" in line), None)
            or proc.stderr.decode()[-500:]
            or f"client exited with {proc.returncode}"
        )
        if not any(line.get("event") == "connect" for line in lines):
            raise HarnessError(f"the {setup} client could not connect to 127.0.0.1:{port}: {error}")
        # the client gave up on the request after the last answered one: retry it once, then
        # record it as unanswered and go on
        stuck = len(answered)
        if stuck >= len(pending):
            break
        case_id = pending[stuck].id
        if case_id not in failures:
            failures[case_id] = error
            pending = pending[stuck:]
            continue
        results[case_id] = Observation(None, {}, NO_BODY, f"no reply (twice): {error}")
        pending = pending[stuck + 1 :]
    return results


def _jwr_observation(line: dict[str, Any], ports: Callable[[str], str]) -> Observation:
    jwres = line.get("jwres") or {}
    headers = _normalise(jwres.get("headers") or {}, ports)
    body = _normalise(jwres.get("body"), ports) if jwres.get("hasBody") else NO_BODY
    return Observation(jwres.get("statusCode"), headers, body)


# -- the whole run ----------------------------------------------------------------------------


@dataclass
class Results:
    outcomes: list[Outcome]
    seconds: float
    missing_api: list[str]

    def __repr__(self) -> str:
        return f"<Results {len(self.outcomes)} outcomes in {self.seconds:.1f} s>"

    def notes(self) -> list[str]:
        """What happened on the way that the comparison does not show (retries)."""
        return [
            f"{o.key} ({side}): {obs.note}"
            for o in self.outcomes
            for side, obs in (("reference", o.reference), ("gateway", o.gateway))
            if obs.note
        ]

    def select(self, kind: str, status: str | None = None) -> list[Outcome]:
        return [
            o for o in self.outcomes if o.kind == kind and (status is None or o.status == status)
        ]


async def run_all() -> Results:
    """Start everything, run every case, compare and classify.

    Raises:
        HarnessError: Node, its packages or a reference server is missing.
    """
    from tests.differential import gateway_express_app, gateway_sails_app

    started = time.monotonic()
    node = node_binary()
    gateway_express_app.MISSING_API.clear()
    express_app = gateway_express_app.build_express_app()
    sails_app = gateway_sails_app.build_sails_app()
    outcomes: list[Outcome] = []
    async with (
        reference_servers(node) as ref,
        gateway_server(express_app) as gw_express,
        gateway_server(sails_app) as gw_sails,
    ):
        ref_port = {"express": ref.express, "sails": ref.sails}
        gw_port = {"express": gw_express.port, "sails": gw_sails.port}
        ref_norm = _port_normaliser(ref_port.values())
        gw_norm = _port_normaliser(gw_port.values())
        limiter = trio.CapacityLimiter(8)
        http_results: dict[str, tuple[Observation, Observation]] = {}

        async def one(case: HTTPCase) -> None:
            async with limiter:
                methods = list(case.reply_methods())
                r = await http_exchange(
                    ref_port[case.app], request_bytes(case, ref_port[case.app]), methods, ref_norm
                )
                g = await http_exchange(
                    gw_port[case.app], request_bytes(case, gw_port[case.app]), methods, gw_norm
                )
                http_results[case.id] = (r, g)

        socket_results: dict[tuple[str, str], dict[str, Observation]] = {}

        async def setup_run(setup: str, side: str) -> None:
            port = ref.sails if side == "ref" else gw_sails.port
            norm = ref_norm if side == "ref" else gw_norm
            socket_results[(setup, side)] = await run_socket_setup(
                node, setup, port, list(SOCKET_CASES), norm
            )

        async with trio.open_nursery() as nursery:
            for case in HTTP_CASES:
                nursery.start_soon(one, case)
            for setup in SOCKET_SETUPS:
                for side in ("ref", "gw"):
                    nursery.start_soon(setup_run, setup, side)

    for case in HTTP_CASES:
        r, g = http_results[case.id]
        outcomes.append(
            classify(Outcome("http", case.id, case.app, case.label(), r, g, compare(r, g)))
        )
    for setup in SOCKET_SETUPS:
        for scase in SOCKET_CASES:
            r = socket_results[(setup, "ref")][scase.id]
            g = socket_results[(setup, "gw")][scase.id]
            outcomes.append(
                classify(
                    Outcome(
                        "socket", f"{scase.id}@{setup}", "sails", scase.label(), r, g, compare(r, g)
                    )
                )
            )
    return Results(
        outcomes, time.monotonic() - started, list(dict.fromkeys(gateway_express_app.MISSING_API))
    )


def run() -> Results:
    """``run_all()`` in a fresh trio run (for the report and the test module's fixture)."""
    return trio.run(run_all)
