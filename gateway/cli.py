# The `gateway` command: serve an app, print resolved settings, check a profile, detect the board,
# render systemd drop-ins, make privilege tokens. Clear exit codes: 0 ok, 2 usage, 78 config.
# Owns: argument parsing, process-level concerns (logging, signals, trio.run, systemd notify).
# Must not: hold configuration logic (gateway.settings) or serving logic (gateway.server).
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Any

from gateway.errors import ConfigError

log = logging.getLogger("gateway")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gateway", description="Request gateway for embedded devices")
    sub = p.add_subparsers(dest="command", required=True)

    def profile_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--profile", default=os.environ.get("GATEWAY_PROFILE", "default"),
                        help="hardware profile name, path to a .toml, or 'auto' (default: "
                             "$GATEWAY_PROFILE or 'default')")
        sp.add_argument("--host", help="listen address(es), comma-separated (server.host)")
        sp.add_argument("--port", help="TCP port, 0 for any free port (server.port)")
        sp.add_argument("--unix", help="also listen on this Unix socket (server.unix_path)")
        sp.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one setting, e.g. --set http.idle_timeout_s=5")

    s = sub.add_parser("serve", help="serve an app: gateway serve MODULE:ATTR")
    s.add_argument("app", nargs="?", default=os.environ.get("GATEWAY_APP", "gateway.demo:app"),
                   help="MODULE:ATTR imported from the current directory "
                        "(default: $GATEWAY_APP or the demo app)")
    profile_args(s)
    st = sub.add_parser("settings", help="print the resolved settings of a profile")
    profile_args(st)
    c = sub.add_parser("check", help="check a profile (and optionally an app) and exit")
    c.add_argument("app", nargs="?", help="MODULE:ATTR to import as well")
    profile_args(c)
    d = sub.add_parser("detect", help="detect the board and print the profile it gets")
    d.add_argument("--root", default=os.environ.get("GATEWAY_ROOT", "/"))
    u = sub.add_parser("render-units", help="print the systemd drop-in for a profile")
    profile_args(u)
    t = sub.add_parser("token", help="make a new privilege token and its credentials-file line")
    t.add_argument("--name", default="admin")
    return p


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, name in (("host", "server.host"), ("port", "server.port"),
                      ("unix", "server.unix_path")):
        value = getattr(args, key, None)
        if value is not None:
            out[name] = value
    for item in getattr(args, "set", []):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item}: expected SECTION.KEY=VALUE")
        out[key.strip()] = value
    return out


# GATEWAY_* variables the CLI reads itself; settings would refuse them as unknown keys.
_CLI_ENV = frozenset({"GATEWAY_APP", "GATEWAY_LOG_LEVEL"})


def _settings(args: argparse.Namespace) -> Any:
    from gateway.settings import load_settings

    env = {k: v for k, v in os.environ.items() if k not in _CLI_ENV}
    return load_settings(args.profile, overrides=_overrides(args), env=env)


def load_app(spec: str) -> Any:
    """Import ``MODULE:ATTR`` (ATTR defaults to ``app``) with the current directory on sys.path.

    Raises:
        ConfigError: the module or attribute cannot be found, or is not an App.
    """
    from gateway.app.application import App

    module_name, _, attr = spec.partition(":")
    attr = attr or "app"
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"app {spec!r}: cannot import module {module_name!r} ({exc})") from None
    obj = getattr(module, attr, None)
    if obj is None:
        raise ConfigError(f"app {spec!r}: module {module_name!r} has no attribute {attr!r}")
    if callable(obj) and not isinstance(obj, App):
        obj = obj()  # an app factory
    if not isinstance(obj, App):
        raise ConfigError(f"app {spec!r}: expected a gateway.App, got {type(obj).__name__}")
    return obj


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=os.environ.get("GATEWAY_LOG_LEVEL", "INFO"), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "settings":
            from gateway.settings import format_settings

            print(format_settings(_settings(args)), end="")
            return 0
        if args.command == "check":
            settings = _settings(args)
            if settings.server.credentials_file:
                from gateway.app.auth import Credentials

                Credentials.load(settings.server.credentials_file)
            if args.app:
                load_app(args.app)
            print(f"ok: profile {settings.profile} ({settings.source})")
            return 0
        if args.command == "detect":
            from gateway.detect import detect, format_detection

            print(format_detection(detect(args.root)), end="")
            return 0
        if args.command == "render-units":
            from gateway.units import render_dropin

            print(render_dropin(_settings(args)), end="")
            return 0
        if args.command == "token":
            from gateway.app.auth import hash_token

            import secrets

            token = secrets.token_urlsafe(32)
            print(f"token: {token}\ncredentials line: {hash_token(token)} {args.name}")
            return 0
        settings = _settings(args)
        app = load_app(args.app)
        app.bind(settings)
    except ConfigError as exc:
        print(f"gateway: configuration error: {exc}", file=sys.stderr)
        return ConfigError.exit_code
    import trio

    from gateway.server.runner import run

    try:
        trio.run(run, app, settings, args.profile, _overrides(args))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"gateway: cannot serve: {exc}", file=sys.stderr)
        return 71
    return 0


