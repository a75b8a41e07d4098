# The Python half of install.sh, run with a release's own venv python (so it renders with that
# release's gateway.settings / gateway.units, also when rolling back to an older release).
#
#   gwinstall.py render --profile NAME|auto|PATH --env-file FILE --service-dropin OUT
#                       [--socket-dropin OUT] [--avahi-service OUT] [--version V] [--no-detect]
#       Resolves the profile as the service will (the env file's GATEWAY_* variables included,
#       its GATEWAY_PROFILE winning over --profile as EnvironmentFile= wins over Environment=),
#       writes both drop-ins atomically, and the Avahi service file that advertises the
#       profile on the LAN (removed when the profile is not reachable from it: loopback only),
#       and prints shell assignments for install.sh:
#       RESOLVED=<profile name> HEALTH_URL=<url> CREDENTIALS=<file or empty> MEMORY_MAX=<bytes>
#   gwinstall.py envfile FILE      print the GATEWAY_* assignments of an EnvironmentFile
#
# Exit status: 0 ok, 78 configuration error (message on stderr), 2 usage.
from __future__ import annotations

import argparse
import ipaddress
import os
import shlex
import sys
from pathlib import Path


def read_env_file(path: str) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them (comments, quotes)."""
    out: dict[str, str] = {}
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return out
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def health_url(host: str, port: int) -> str:
    """Where a local client reaches the server: the first listen address, wildcards -> loopback."""
    first = next((h.strip() for h in host.split(",") if h.strip()), "127.0.0.1")
    try:
        addr = ipaddress.ip_address(first.strip("[]"))
    except ValueError:
        addr = ipaddress.ip_address("127.0.0.1")
    if addr.is_unspecified:
        addr = ipaddress.ip_address("::1" if addr.version == 6 else "127.0.0.1")
    netloc = f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}"
    return f"http://{netloc}/_gateway/health"


def _write(path: str, text: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, p)


def render(args: argparse.Namespace) -> int:
    from gateway.discovery import avahi_service, installed_version, not_advertised
    from gateway.errors import ConfigError
    from gateway.settings import load_settings
    from gateway.units import render_dropin, render_socket_dropin

    file_env = read_env_file(args.env_file)
    profile = file_env.get("GATEWAY_PROFILE") or args.profile
    if file_env.get("GATEWAY_PROFILE") and args.profile not in ("", file_env["GATEWAY_PROFILE"]):
        print(f"warning: {args.env_file} sets GATEWAY_PROFILE={file_env['GATEWAY_PROFILE']}, "
              f"which wins over --profile {args.profile} (EnvironmentFile= overrides the "
              "drop-in): rendering for that one", file=sys.stderr)
    if profile == "auto" and args.no_detect:
        print("error: --profile auto detects the board this runs on; when staging an image "
              "with --root, name the board's profile (see `gateway detect` on the board)",
              file=sys.stderr)
        return 78
    env = {k: v for k, v in file_env.items() if k.startswith("GATEWAY_")}
    try:
        profiles_dir = args.profiles_dir if os.path.isdir(args.profiles_dir) else None
        settings = load_settings(profile, profiles_dir=profiles_dir, env=env)
        service = render_dropin(settings)
        socket = render_socket_dropin(settings) if args.socket_dropin else ""
        avahi = (avahi_service(settings, args.version or installed_version())
                 if args.avahi_service else None)
    except (ConfigError, ValueError) as exc:
        print(f"error: profile {profile!r}: {exc}", file=sys.stderr)
        return 78
    _write(args.service_dropin, service)
    if args.socket_dropin:
        _write(args.socket_dropin, socket)
    if args.avahi_service:
        if avahi is not None:
            _write(args.avahi_service, avahi)
        else:
            Path(args.avahi_service).unlink(missing_ok=True)
            print(f"note: not advertised on the LAN (mDNS): {not_advertised(settings)}",
                  file=sys.stderr)
    s = settings.server
    values = {
        "RESOLVED": settings.profile,
        "HEALTH_URL": health_url(s.host, s.port) if s.port else "",
        "CREDENTIALS": s.credentials_file,
        "MEMORY_MAX": str(settings.systemd.memory_max_bytes),
    }
    print(" ".join(f"{k}={shlex.quote(v)}" for k, v in values.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gwinstall.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render")
    r.add_argument("--profile", default="auto")
    r.add_argument("--env-file", default="/etc/gateway/gateway.env")
    r.add_argument("--profiles-dir", default="/etc/gateway/profiles",
                   help="searched first (the staged root's /etc/gateway/profiles)")
    r.add_argument("--service-dropin", required=True)
    r.add_argument("--socket-dropin", default="")
    r.add_argument("--avahi-service", default="",
                   help="write the Avahi service file here (or remove it: not advertised)")
    r.add_argument("--version", default="", help="the release's version, for the TXT record")
    r.add_argument("--no-detect", action="store_true",
                   help="refuse 'auto' (staging: this machine is not the board)")
    e = sub.add_parser("envfile")
    e.add_argument("path")
    args = p.parse_args(argv)
    if args.cmd == "render":
        return render(args)
    for k, v in read_env_file(args.path).items():
        if k.startswith("GATEWAY_"):
            print(f"{k}={shlex.quote(v)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
