# LAN discovery through Avahi (mDNS/DNS-SD): renders the static service file that makes the
# device show up as `_http._tcp` (or `_https._tcp` with TLS), with a TXT record naming the path,
# the profile and the version, from the same Settings the server runs with. Avahi (the system's
# daemon) does the advertising; the gateway itself keeps no multicast socket and no dependency.
# Pure functions, text in and out; deploy/install.sh installs the file (gwinstall.py render).
# Must not: import trio or any serving code (it runs at install time, with the release's venv).
from __future__ import annotations

import ipaddress
from typing import Final, Protocol
from xml.sax.saxutils import escape

__all__ = ["AVAHI_SERVICE_PATH", "avahi_service", "not_advertised", "installed_version"]

AVAHI_SERVICE_PATH: Final = "/etc/avahi/services/gateway.service"
# DNS-SD (RFC 6763 6.1): each TXT string is at most 255 bytes.
_TXT_MAX: Final = 255


class _Server(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def tls_cert_file(self) -> str: ...


class DiscoverySettings(Protocol):
    """The part of gateway.settings.Settings the service file is rendered from."""

    @property
    def profile(self) -> str: ...
    @property
    def server(self) -> _Server: ...


def installed_version() -> str:
    """The version of the installed gateway distribution (a release sets it when it is built),
    or ``gateway.__version__`` when running from a source tree that is not installed."""
    from importlib import metadata

    try:
        return metadata.version("gateway")
    except metadata.PackageNotFoundError:
        from gateway.version import __version__

        return __version__


def not_advertised(settings: DiscoverySettings) -> str | None:
    """Why the profile is not advertised on the LAN, or None when it is.

    A server listening on loopback only cannot be reached from the LAN (advertising it would
    send people to an address that refuses them), and port 0 is not known until it runs.
    """
    s = settings.server
    if s.port == 0:
        return "server.port is 0 (a free port chosen at start cannot be advertised)"
    hosts = [h.strip().strip("[]") for h in s.host.split(",") if h.strip()] or ["127.0.0.1"]
    for h in hosts:
        try:
            if not ipaddress.ip_address(h.split("%", 1)[0]).is_loopback:
                return None
        except ValueError:
            return None  # a name: it may well resolve to a LAN address
    return f"server.host {s.host!r} is loopback only: nothing on the LAN can reach it"


def _txt(key: str, value: str) -> str:
    item = f"{key}={value}"
    if len(item.encode()) > _TXT_MAX:
        raise ValueError(f"TXT record {key}: {len(item.encode())} bytes, at most {_TXT_MAX}")
    return f"    <txt-record>{escape(item)}</txt-record>"


def avahi_service(
    settings: DiscoverySettings, version: str, name: str = "gateway on %h"
) -> str | None:
    """The Avahi static service file (avahi.service(5)) for a profile.

    Args:
        settings: the resolved settings (port, TLS, profile name).
        version: the gateway version for the TXT record.
        name: the instance name people see; Avahi replaces ``%h`` with the host name.

    Returns:
        The XML text (install it as AVAHI_SERVICE_PATH; avahi-daemon notices new files), or
        None when the profile is not advertised (see ``not_advertised``).

    Raises:
        ValueError: a TXT string over 255 bytes (an absurdly long profile name or version).
    """
    if not_advertised(settings) is not None:
        return None
    s = settings.server
    kind = "_https._tcp" if s.tls_cert_file else "_http._tcp"
    lines = [
        '<?xml version="1.0" standalone="no"?>',
        '<!DOCTYPE service-group SYSTEM "avahi-service.dtd">',
        "<!-- Rendered by gateway.discovery from the profile; regenerate it rather than",
        "     editing it (deploy/install.sh does, on each install). -->",
        "<service-group>",
        f'  <name replace-wildcards="yes">{escape(name)}</name>',
        "  <service>",
        f"    <type>{kind}</type>",
        f"    <port>{s.port}</port>",
        _txt("path", "/"),
        _txt("profile", settings.profile),
        _txt("version", version),
        "  </service>",
        "</service-group>",
    ]
    return "\n".join(lines) + "\n"
