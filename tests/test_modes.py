# User and privilege mode: bearer tokens from a credentials file (sha256 hashes, chmod 600),
# privileged routes and routers, per-mode body limits, and the built-in /_gateway routes.
from __future__ import annotations

import os
from typing import Any

import pytest
import trio

from gateway import App, Router
from gateway.app.auth import hash_token
from gateway.errors import ConfigError
from tests.helpers import make_settings, request, running

TOKEN = "s3cret-token-for-tests"
# `printf '%s' s3cret-token-for-tests | sha256sum`, computed outside the code under test
TOKEN_SHA256 = "0b780753d2dee1a420f179bf0aaf7e99ee12b7cb1d0c5c621234a7b9fffdf705"


def test_hash_token_is_sha256_hex_of_the_utf8_token() -> None:
    assert hash_token(TOKEN) == "sha256:" + TOKEN_SHA256
    # `printf '' | sha256sum` (an empty bearer token is refused before any hashing:
    # tests/test_auth_credentials.py)
    assert hash_token("") == (
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@pytest.fixture
def creds(tmp_path: Any) -> str:
    """A credentials file written from literals, not from hash_token (the code under test)."""
    path = tmp_path / "credentials"
    path.write_text(f"# admins\n\nsha256:{TOKEN_SHA256} admin\n")
    os.chmod(path, 0o600)
    return str(path)


def modes_app() -> App:
    app = App()

    @app.get("/admin", privileged=True)
    async def admin(req, res):  # type: ignore[no-untyped-def]
        await res.json({"mode": req.mode})

    admin_router = Router(privileged=True)

    @admin_router.get("/reboot")
    async def reboot(req, res):  # type: ignore[no-untyped-def]
        await res.send("rebooting")

    app.use("/sys", admin_router)

    @app.get("/public")
    async def public(req, res):  # type: ignore[no-untyped-def]
        await res.json({"mode": req.mode})

    @app.post("/upload")
    async def upload(req, res):  # type: ignore[no-untyped-def]
        n = 0
        async for chunk in req:
            n += len(chunk)
        await res.json({"bytes": n, "mode": req.mode})

    return app


def bearer(token: str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {token}"), ("Accept", "text/html")]


@pytest.mark.parametrize("target", ["/admin", "/sys/reboot"])
async def test_privileged_routes_need_a_valid_token(creds: str, target: str) -> None:
    with trio.fail_after(5):
        async with running(modes_app(), server__credentials_file=creds) as server:
            none = await request(server, "GET", target, [("Accept", "text/html")])
            wrong = await request(server, "GET", target, bearer("wrong"))
            basic = await request(server, "GET", target, [("Authorization", "Basic eDp5")])
            right = await request(server, "GET", target, bearer(TOKEN))
            public = await request(server, "GET", "/public", bearer(TOKEN))
    assert none.status == 401 and none.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status == 403 and basic.status == 403
    assert right.status == 200
    assert public.json() == {"mode": "privilege"}


async def test_without_credentials_file_nobody_gets_privilege() -> None:
    with trio.fail_after(5):
        async with running(modes_app()) as server:
            r = await request(server, "GET", "/admin", bearer(TOKEN))
    assert r.status == 403


def test_readable_credentials_file_is_refused(creds: str) -> None:
    os.chmod(creds, 0o644)
    app = App()
    with pytest.raises(ConfigError) as info:
        app.bind(make_settings(server__credentials_file=creds))
    assert creds in str(info.value) and "chmod 600" in str(info.value)


def test_missing_and_malformed_credentials_files(tmp_path: Any) -> None:
    app = App()
    with pytest.raises(ConfigError, match="cannot read"):
        app.bind(make_settings(server__credentials_file=str(tmp_path / "nope")))
    bad = tmp_path / "bad"
    bad.write_text("plaintext-token\n")
    os.chmod(bad, 0o600)
    with pytest.raises(ConfigError, match=r"bad:1"):
        app.bind(make_settings(server__credentials_file=str(bad)))


async def test_body_limits_per_mode(creds: str) -> None:
    body = b"x" * (300 * 1024)  # over user.max_body_bytes (256 KiB), under privileged (2 MiB)
    with trio.fail_after(5):
        async with running(modes_app(), server__credentials_file=creds) as server:
            user = await request(server, "POST", "/upload", [("Accept", "text/html")], body=body)
            priv = await request(server, "POST", "/upload", bearer(TOKEN), body=body)
            chunked = await request(
                server,
                "POST",
                "/upload",
                [("Accept", "text/html"), ("Transfer-Encoding", "chunked")],
                body=b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body),
            )
    assert user.status == 413 and b"limit" in user.body
    assert priv.status == 200 and priv.json() == {"bytes": len(body), "mode": "privilege"}
    assert chunked.status == 413  # checked while reading, not only from Content-Length


async def test_builtin_routes(creds: str) -> None:
    with trio.fail_after(5):
        async with running(modes_app(), server__credentials_file=creds) as server:
            health_user = await request(server, "GET", "/_gateway/health")
            health_priv = await request(server, "GET", "/_gateway/health", bearer(TOKEN))
            stats_user = await request(server, "GET", "/_gateway/stats")
            stats = await request(server, "GET", "/_gateway/stats", bearer(TOKEN))
    assert health_user.json() == {"status": "ok", "mode": "user"}
    assert health_priv.json() == {"status": "ok", "mode": "privilege"}
    assert stats_user.status == 401
    data = stats.json()
    assert data["profile"] == "test"
    assert data["requests"] >= 3
    assert data["connections"]["accepted"] >= 4 and "active" in data["connections"]
    assert data["memory"]["body_budget"]["total_bytes"] == 4194304
    assert "rss_bytes" in data["memory"]
