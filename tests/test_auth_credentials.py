# Privilege credentials checked against values computed OUTSIDE the code under test: digests
# are literals (`printf '%s' TOKEN | sha256sum`), files are written from literals. Each test
# names the regression it exists to catch: a partial digest compare, a credentials file that
# group or others can reach, a case-sensitive `Bearer` (RFC 9110 11.1: the scheme is
# case-insensitive), and a bearer token carried by a Sails virtual request.
from __future__ import annotations

import json
import locale
import os
import stat
from pathlib import Path

import pytest
import trio
from wsproto.events import AcceptConnection, TextMessage

from gateway import App, Request, Response
from gateway.app.auth import Credentials, presents_token
from gateway.errors import ConfigError
from tests.helpers import request, running
from tests.test_websocket import Client

TOKEN = "s3cret-token-for-tests"
# `printf '%s' s3cret-token-for-tests | sha256sum`
DIGEST = "0b780753d2dee1a420f179bf0aaf7e99ee12b7cb1d0c5c621234a7b9fffdf705"
OTHER = "literal-admin-token"
# `printf '%s' literal-admin-token | sha256sum`
OTHER_DIGEST = "11546f87046e0996290c7fa01741527b9b2f73b184a8f2a04fe06c47faade671"


def _flip(digest: str, byte: int) -> str:
    """``digest`` with one byte changed (the low bit of byte ``byte``, 0-based)."""
    raw = bytearray(bytes.fromhex(digest))
    raw[byte] ^= 0x01
    return raw.hex()


def write_creds(path: Path, text: str, mode: int = 0o600) -> str:
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


# -- the digest compare ---------------------------------------------------------------------------
def test_matching_token_gives_its_entry_name(tmp_path: Path) -> None:
    creds = Credentials.load(
        write_creds(tmp_path / "c", f"# ops\nsha256:{OTHER_DIGEST} ops\n\nsha256:{DIGEST} admin\n")
    )
    assert len(creds) == 2
    assert creds.verify(TOKEN) == "admin"
    assert creds.verify(OTHER) == "ops"
    assert creds.verify("s3cret-token-for-test") is None  # one character short
    assert creds.verify(TOKEN + " ") is None


def test_entry_name_keeps_its_spaces(tmp_path: Path) -> None:
    creds = Credentials.load(write_creds(tmp_path / "c", f"sha256:{DIGEST}   ops team  laptop \n"))
    assert creds.verify(TOKEN) == "ops team  laptop"


def test_file_is_utf8_whatever_the_locale(tmp_path: Path) -> None:
    # a service may run under the C locale (ASCII): comments and names are still UTF-8 text
    path = write_creds(tmp_path / "c", f"# clé de Zoë\nsha256:{DIGEST} Zoë’s token\n")
    saved = locale.setlocale(locale.LC_CTYPE)
    try:
        locale.setlocale(locale.LC_CTYPE, "C")
        creds = Credentials.load(path)
    finally:
        locale.setlocale(locale.LC_CTYPE, saved)
    assert creds.verify(TOKEN) == "Zoë’s token"


@pytest.mark.parametrize("token", ["\udc80", "a\udcffb", "\ud800"])
def test_token_with_lone_surrogates_is_refused_not_an_error(creds: Credentials, token: str) -> None:
    # JSON (a Sails virtual request's headers) can carry lone surrogates; they must compare
    # unequal, not raise UnicodeEncodeError out of the privilege check
    assert creds.verify(token) is None
    assert creds.check_authorization(f"Bearer {token}") == (False, True)


def test_unnamed_entry_is_named_after_its_line(tmp_path: Path) -> None:
    creds = Credentials.load(write_creds(tmp_path / "c", f"\n# x\nsha256:{DIGEST}\n"))
    assert creds.verify(TOKEN) == "token3"


@pytest.mark.parametrize("byte", [0, 3, 4, 15, 16, 30, 31])
def test_a_digest_differing_in_any_one_byte_is_refused(tmp_path: Path, byte: int) -> None:
    # catches a compare of only part of the digest (a prefix, a suffix, the first 4 bytes...):
    # the listed digest is the token's own with one byte changed
    near = _flip(DIGEST, byte)
    assert near != DIGEST and (byte < 4 or near[:8] == DIGEST[:8])
    creds = Credentials.load(write_creds(tmp_path / "c", f"sha256:{near} near\n"))
    assert creds.verify(TOKEN) is None
    assert creds.check_authorization(f"Bearer {TOKEN}") == (False, True)


def test_uppercase_hex_digest_is_the_same_digest(tmp_path: Path) -> None:
    creds = Credentials.load(write_creds(tmp_path / "c", f"sha256:{DIGEST.upper()} admin\n"))
    assert creds.verify(TOKEN) == "admin"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (f"sha256:{DIGEST[:-1]}", "c:1: expected 'sha256:<64 hex digits> [name]'"),
        (f"sha256:{DIGEST}0", "c:1: expected 'sha256:<64 hex digits> [name]'"),
        (f"sha1:{DIGEST}", "c:1: expected 'sha256:<64 hex digits> [name]'"),
        (f"sha256:{DIGEST[:-1]}g", "c:1: expected 64 hex digits after 'sha256:'"),
        (TOKEN, "c:1: expected 'sha256:<64 hex digits> [name]'"),
    ],
)
def test_malformed_line_is_refused_with_its_line_number(
    tmp_path: Path, line: str, message: str
) -> None:
    path = write_creds(tmp_path / "c", line + "\n")
    with pytest.raises(ConfigError) as info:
        Credentials.load(path)
    assert str(info.value) == f"{tmp_path}/{message}"


def test_empty_credentials_accept_nothing() -> None:
    creds = Credentials.empty()
    assert len(creds) == 0
    assert creds.verify(TOKEN) is None
    assert creds.check_authorization(f"Bearer {TOKEN}") == (False, True)


# -- the file's mode ----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700, 0o200])
def test_owner_only_modes_are_accepted(tmp_path: Path, mode: int) -> None:
    creds = Credentials.load(write_creds(tmp_path / "c", f"sha256:{DIGEST} a\n", mode))
    assert creds.verify(TOKEN) == "a"


@pytest.mark.parametrize("mode", [0o640, 0o620, 0o610, 0o604, 0o602, 0o601, 0o660, 0o644])
def test_any_group_or_other_permission_is_refused(tmp_path: Path, mode: int) -> None:
    # 0640 (group-readable) is the classic slip: a group member could read the hashes and
    # brute-force a weak token offline
    path = write_creds(tmp_path / "c", f"sha256:{DIGEST} a\n", mode)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    with pytest.raises(ConfigError) as info:
        Credentials.load(path)
    assert str(info.value) == (
        f"{path}: server.credentials_file: must not be accessible by other users "
        f"(mode {mode:04o}; expected 0600 or 0400: chmod 600 {path})"
    )


def test_missing_file_names_the_key(tmp_path: Path) -> None:
    path = str(tmp_path / "absent")
    with pytest.raises(ConfigError) as info:
        Credentials.load(path)
    assert (
        str(info.value)
        == f"{path}: server.credentials_file: cannot read (No such file or directory)"
    )


# -- the Authorization header -------------------------------------------------------------------
@pytest.fixture
def creds(tmp_path: Path) -> Credentials:
    return Credentials.load(write_creds(tmp_path / "c", f"sha256:{DIGEST} admin\n"))


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_bearer_scheme_is_case_insensitive(creds: Credentials, scheme: str) -> None:
    assert creds.check_authorization(f"{scheme} {TOKEN}") == (True, False)


@pytest.mark.parametrize("header", [f"Bearer   {TOKEN}", f"  Bearer {TOKEN}  "])
def test_extra_spaces_around_the_token(creds: Credentials, header: str) -> None:
    assert creds.check_authorization(header) == (True, False)


@pytest.mark.parametrize(
    ("header", "result"),
    [
        (None, (False, False)),  # no credentials: 401 later, not a failure
        ("", (False, False)),
        ("Bearer", (False, True)),
        ("Bearer ", (False, True)),
        ("Bearer    ", (False, True)),
        (f"Basic {TOKEN}", (False, True)),
        (f"Bearerx {TOKEN}", (False, True)),
        (f"Bearer {TOKEN.upper()}", (False, True)),  # the token itself is case-sensitive
        ("Bearer wrong", (False, True)),
        (f"Bearer {OTHER}", (False, True)),
    ],
)
def test_other_authorization_values(
    creds: Credentials, header: str | None, result: tuple[bool, bool]
) -> None:
    assert creds.check_authorization(header) == result


def privileged_app() -> App:
    app = App()

    @app.get("/admin", privileged=True)
    async def admin(req: Request, res: Response) -> None:
        await res.json({"mode": req.mode, "socket": req.is_socket})

    return app


async def test_lowercase_and_uppercase_bearer_over_http(tmp_path: Path) -> None:
    path = write_creds(tmp_path / "c", f"sha256:{DIGEST} admin\n")
    with trio.fail_after(10):
        async with running(privileged_app(), server__credentials_file=path) as server:
            replies = {
                scheme: await request(
                    server, "GET", "/admin", [("Authorization", f"{scheme} {TOKEN}")]
                )
                for scheme in ("Bearer", "bearer", "BEARER")
            }
            wrong = await request(server, "GET", "/admin", [("Authorization", "bearer nope")])
    for scheme, reply in replies.items():
        assert (scheme, reply.status) == (scheme, 200)
        assert reply.json() == {"mode": "privilege", "socket": False}
    assert wrong.status == 403


# -- a bearer token on a Sails virtual request ---------------------------------------------------
async def _eio4(port: int, headers: list[tuple[str, str]] | None = None) -> Client:
    client, event = await Client.open(
        port, "/socket.io/?EIO=4&transport=websocket", headers=headers
    )
    assert isinstance(event, AcceptConnection)
    opened = await client.event()
    assert isinstance(opened, TextMessage) and opened.data.startswith("0{")
    await client.send(TextMessage("40"))
    connected = await client.event()
    assert isinstance(connected, TextMessage) and connected.data.startswith('40{"sid":')
    return client


async def _virtual(client: Client, ack: int, headers: dict[str, str] | None) -> dict[str, object]:
    request_ = {"url": "/admin", **({"headers": headers} if headers is not None else {})}
    await client.send(TextMessage(f"42{ack}" + json.dumps(["get", request_])))
    reply = await client.event()
    assert isinstance(reply, TextMessage) and reply.data.startswith(f"43{ack}[")
    jwr: dict[str, object] = json.loads(reply.data[2 + len(str(ack)) :])[0]
    return jwr


async def test_bearer_token_on_a_virtual_request(tmp_path: Path) -> None:
    path = write_creds(tmp_path / "c", f"sha256:{DIGEST} admin\n")
    with trio.fail_after(10):
        async with running(privileged_app(), server__credentials_file=path) as server:
            client = await _eio4(server.port)
            async with client.stream:
                none = await _virtual(client, 1, None)
                right = await _virtual(client, 2, {"Authorization": f"bearer {TOKEN}"})
                wrong = await _virtual(client, 3, {"Authorization": "Bearer nope"})
                basic = await _virtual(client, 4, {"Authorization": f"Basic {TOKEN}"})
                after = await _virtual(client, 5, None)  # privilege is per request, not sticky
    assert none["statusCode"] == 401
    assert right["statusCode"] == 200 and right["body"] == {"mode": "privilege", "socket": True}
    assert wrong["statusCode"] == 403 and basic["statusCode"] == 403
    assert after["statusCode"] == 401


async def test_lone_surrogate_bearer_token_on_a_virtual_request_is_a_403(tmp_path: Path) -> None:
    # JSON lets a client send "\ud800"; the request must be answered (403), not lost to an
    # encoding error in the privilege check
    path = write_creds(tmp_path / "c", f"sha256:{DIGEST} admin\n")
    with trio.fail_after(10):
        async with running(privileged_app(), server__credentials_file=path) as server:
            client = await _eio4(server.port)
            async with client.stream:
                await client.send(
                    TextMessage(
                        '421["get",{"url":"/admin","headers":{"Authorization":"Bearer \\ud800"}}]'
                    )
                )
                reply = await client.event()
                ok = await _virtual(client, 2, {"Authorization": f"Bearer {TOKEN}"})
    assert isinstance(reply, TextMessage) and reply.data.startswith("431[")
    assert json.loads(reply.data[3:])[0]["statusCode"] == 403
    assert ok["statusCode"] == 200


async def test_bearer_token_on_the_socket_handshake_covers_its_virtual_requests(
    tmp_path: Path,
) -> None:
    path = write_creds(tmp_path / "c", f"sha256:{DIGEST} admin\n")
    with trio.fail_after(10):
        async with running(privileged_app(), server__credentials_file=path) as server:
            client = await _eio4(server.port, [("Authorization", f"BEARER {TOKEN}")])
            async with client.stream:
                plain = await _virtual(client, 1, None)
                # a wrong token on one request does not take the handshake's privilege away
                wrong = await _virtual(client, 2, {"Authorization": "Bearer nope"})
    assert plain["statusCode"] == 200 and plain["body"] == {"mode": "privilege", "socket": True}
    assert wrong["statusCode"] == 200


@pytest.mark.parametrize(
    ("header", "presents"),
    [
        ("Bearer abc", True),
        ("bearer abc", True),  # the scheme is case-insensitive (RFC 9110 11.1)
        ("BEARER abc", True),
        ("  Bearer   abc  ", True),
        ("Bearer abc def", True),  # split at the first space: the rest is the token
        ("Bearer", False),  # no token: not a guess
        ("Bearer    ", False),
        ("Basic dXNlcjpwYXNz", False),  # a browser's saved credentials, not a token guess
        ("Digest x", False),
        ("Bearerabc", False),
        ("abc", False),
    ],
)
def test_what_counts_as_presenting_a_bearer_token(header: str, presents: bool) -> None:
    # what gateway.app.bans counts as a guess when the token fails
    assert presents_token(header) is presents
