# Privilege credentials: bearer tokens whose SHA-256 hashes are listed in a file the profile names.
# Owns: loading that file (refusing one other users can read), and constant-time token checks.
# Must not: decide what a privileged caller may reach (the router does) or log tokens.
from __future__ import annotations

import hashlib
import hmac
import os
import stat

from gateway.errors import ConfigError

__all__ = ["Credentials", "hash_token", "presents_token"]


def hash_token(token: str) -> str:
    """The line to put in a credentials file for ``token`` (``sha256:<hex>``)."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def presents_token(header: str) -> bool:
    """True if an Authorization value carries a bearer token: a failed one is a guess (counted
    by gateway.app.bans), where another scheme (a browser's saved Basic credentials for the
    same host) or an empty token is not."""
    scheme, _, token = header.strip().partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


class Credentials:
    """The set of accepted token hashes.

    File format: one ``sha256:<64 hex> [name]`` per line; ``#`` comments and blank lines ignored.
    Tokens are random secrets (not passwords), so one SHA-256 is the right cost per check.
    """

    __slots__ = ("_entries",)

    def __init__(self, entries: list[tuple[bytes, str]]) -> None:
        self._entries = entries

    @classmethod
    def empty(cls) -> Credentials:
        return cls([])

    @classmethod
    def load(cls, path: str) -> Credentials:
        """Load and check a credentials file.

        Raises:
            ConfigError: missing, readable or writable by group/others, or a malformed line.
        """
        try:
            st = os.stat(path)
        except OSError as exc:
            raise ConfigError(
                f"{path}: server.credentials_file: cannot read ({exc.strerror})"
            ) from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"{path}: server.credentials_file: must not be accessible by other users "
                f"(mode {stat.S_IMODE(st.st_mode):04o}; expected 0600 or 0400: chmod 600 {path})"
            )
        entries: list[tuple[bytes, str]] = []
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                parts = line.split(None, 1)
                digest = parts[0]
                if not digest.startswith("sha256:") or len(digest) != 71:
                    raise ConfigError(f"{path}:{lineno}: expected 'sha256:<64 hex digits> [name]'")
                try:
                    raw = bytes.fromhex(digest[7:])
                except ValueError:
                    raise ConfigError(
                        f"{path}:{lineno}: expected 64 hex digits after 'sha256:'"
                    ) from None
                entries.append((raw, parts[1] if len(parts) > 1 else f"token{lineno}"))
        return cls(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def verify(self, token: str) -> str | None:
        """The name of the matching entry, or None. Every entry is compared (constant time)."""
        # surrogatepass: a token from JSON (a Sails virtual request) may hold lone surrogates;
        # any str must hash (and compare unequal), never raise out of the privilege check
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found: str | None = None
        for raw, name in self._entries:
            if hmac.compare_digest(raw, digest):
                found = name
        return found

    def check_authorization(self, header: str | None) -> tuple[bool, bool]:
        """(privileged, failed) for an Authorization header value."""
        if not header:
            return False, False
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False, True
        return (True, False) if self.verify(token.strip()) else (False, True)
