# The `gateway` command: serve an app, print resolved settings, check a profile, detect the board,
# render systemd drop-ins and the Avahi service file, make privilege tokens. Clear exit codes:
# 0 ok, 2 usage, 78 config.
# Owns: argument parsing, process-level concerns (logging, signals, trio.run, systemd notify).
# Must not: hold configuration logic (gateway.settings) or serving logic (gateway.server).
from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

from gateway.commands import COMMANDS, usage
from gateway.errors import ConfigError

log = logging.getLogger("gateway")


class UsageError(Exception):
    """A command line that can't be parsed (exit status 2, as for any usage error)."""

    def __init__(self, message: str, command: str | None = None) -> None:
        super().__init__(message)
        self.command = command


class Args:
    """A parsed command line: the command and its values, defaults filled in."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.app: str | None = (
            os.environ.get("GATEWAY_APP", "gateway.demo:app") if command == "serve" else None
        )
        self.profile: str = os.environ.get("GATEWAY_PROFILE", "default")
        self.host: str | None = None
        self.port: str | None = None
        self.unix: str | None = None
        self.set: list[str] = []
        self.root: str = os.environ.get("GATEWAY_ROOT", "/")
        self.name = "admin"
        self.file: str | None = None
        self.pid: str | None = None
        self.timeout = "30"


def parse_args(argv: list[str]) -> Args | None:
    """Parse ``gateway COMMAND [ARGS]``: options as ``--opt VALUE`` or ``--opt=VALUE``, in any
    order with the positional; ``--`` ends the options.

    Returns:
        The parsed arguments, or None when help was asked for (and printed).

    Raises:
        UsageError: an unknown command or option, a missing value, an extra argument.
    """
    if not argv or argv[0] in ("-h", "--help"):
        if argv:
            print(usage(), end="")
            return None
        raise UsageError("a command is required")
    command = argv[0]
    if command not in COMMANDS:
        raise UsageError(f"unknown command {command!r} (choose from {', '.join(COMMANDS)})")
    _, positional, options = COMMANDS[command]
    args = Args(command)
    given: list[str] = []
    rest = iter(argv[1:])
    only_positional = False
    for word in rest:
        if only_positional or not word.startswith("-") or word == "-":
            given.append(word)
            continue
        if word == "--":
            only_positional = True
            continue
        if word in ("-h", "--help"):
            print(usage(command), end="")
            return None
        flag, eq, value = word.partition("=")
        if flag not in options:
            raise UsageError(f"unknown option {flag!r}", command)
        if not eq:
            value = next(rest, None)  # type: ignore[assignment]
            if value is None:
                raise UsageError(f"{flag} needs a value ({options[flag][0]})", command)
        dest = flag[2:]
        if dest == "set":
            args.set.append(value)
        else:
            setattr(args, dest, value)
    if len(given) > (1 if positional else 0):
        raise UsageError(f"unexpected argument {given[-1]!r}", command)
    if given:
        args.app = given[0]
    return args


def _overrides(args: Args) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, name in (
        ("host", "server.host"),
        ("port", "server.port"),
        ("unix", "server.unix_path"),
    ):
        value = getattr(args, key)
        if value is not None:
            out[name] = value
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item}: expected SECTION.KEY=VALUE")
        out[key.strip()] = value
    return out


# GATEWAY_* variables the CLI reads itself; settings would refuse them as unknown keys.
_CLI_ENV = frozenset({"GATEWAY_APP", "GATEWAY_LOG_LEVEL"})


def _settings(args: Args) -> Any:
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
        missing = exc.name or ""
        if missing and not (module_name == missing or module_name.startswith(missing + ".")):
            # the app exists but one of ITS imports does not: name that one
            raise ConfigError(
                f"app {spec!r}: module {module_name!r} imports {missing!r}, which is not "
                f"installed ({_where(exc)}; install it into the gateway's environment, or add "
                "it to the app's requirements for a release)"
            ) from None
        raise ConfigError(
            f"app {spec!r}: cannot import module {module_name!r}: no such module in "
            f"{os.getcwd()} or the installed packages (MODULE:ATTR names a Python module, "
            "e.g. myapp:app for myapp.py)"
        ) from None
    except SyntaxError as exc:
        raise ConfigError(
            f"app {spec!r}: {exc.filename}:{exc.lineno}: syntax error: {exc.msg}"
        ) from None
    except Exception as exc:  # the module raised while it was imported
        raise ConfigError(
            f"app {spec!r}: importing {module_name!r} failed at {_where(exc)}: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    obj = getattr(module, attr, None)
    if obj is None:
        raise ConfigError(f"app {spec!r}: module {module_name!r} has no attribute {attr!r}")
    if callable(obj) and not isinstance(obj, App):
        obj = obj()  # an app factory
    if not isinstance(obj, App):
        raise ConfigError(f"app {spec!r}: expected a gateway.App, got {type(obj).__name__}")
    return obj


def _reload(args: Args) -> int:
    """SIGHUP the server, then wait until it has applied or refused the profile.

    systemd runs ExecReload= synchronously: when it only sent the signal, ``systemctl reload``
    returned before the server had reloaded (and a refusal was reported as a success). The
    server writes each outcome to ``$RUNTIME_DIRECTORY/reload-status`` (server.runner).

    Returns:
        0 reloaded, 78 refused (the message on stderr), 1 no outcome within --timeout.
    """
    import signal
    import time

    from gateway.server.runner import RELOAD_STATUS

    try:
        pid = int(args.pid or "")
        timeout = float(args.timeout)
    except ValueError:
        raise ConfigError(
            "reload: --pid needs the server's process id and --timeout a number of seconds"
        ) from None
    where = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    path = os.path.join(where, RELOAD_STATUS) if where else ""

    def outcome() -> tuple[int, str]:
        try:
            with open(path, encoding="utf-8") as f:
                generation, _, text = f.read().strip().partition(" ")
            return int(generation), text
        except (OSError, ValueError):
            return 0, ""

    before = outcome()[0] if path else 0
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        print(f"gateway: reload: cannot signal process {pid}: {exc.strerror}", file=sys.stderr)
        return 1
    if not path:
        print("gateway: reload: signal sent ($RUNTIME_DIRECTORY is not set: not waiting)")
        return 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        generation, text = outcome()
        if generation > before:
            verdict, _, detail = text.partition(" ")
            if verdict == "ok":
                print(f"reloaded profile {detail}")
                return 0
            print(f"gateway: reload refused, the old profile stays: {detail}", file=sys.stderr)
            return ConfigError.exit_code
        time.sleep(0.05)
    print(f"gateway: reload: no outcome from process {pid} within {timeout:g} s", file=sys.stderr)
    return 1


def _append_credentials(path: str, line: str) -> None:
    """Append a credentials line, creating the file 0600; one others can read is refused
    (the server would refuse to start with it)."""
    from gateway.app.auth import Credentials

    if os.path.exists(path):
        Credentials.load(path)  # mode and format checked as the server checks them
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the credentials file ({exc.strerror})") from None
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def _where(exc: BaseException) -> str:
    """file:line of the innermost traceback frame outside the import machinery."""
    tb, where = exc.__traceback__, "?"
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if not name.startswith("<frozen") and "importlib" not in name:
            where = f"{name}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["request"]:
        # `gateway request`: the client's command has a grammar of its own (request items) and
        # exit codes of its own (gateway.client.cli); it loads the client, and nothing of the
        # server, only when run
        from gateway.client.cli import main as request_main

        return request_main(argv[1:])
    try:
        args = parse_args(argv)
    except UsageError as exc:
        print(f"{usage(exc.command)}gateway: error: {exc}", file=sys.stderr)
        return 2
    if args is None:
        return 0
    logging.basicConfig(
        level=os.environ.get("GATEWAY_LOG_LEVEL", "INFO"),
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
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
            if settings.server.tls_cert_file:
                from gateway.server.serve import load_tls_context

                load_tls_context(settings)
            if settings.mqtt.url:
                from gateway.server.mqtt_bridge import check

                check(settings)  # and that paho-mqtt is installed
            if args.app:
                load_app(args.app)
            from gateway.http.parser import LABEL, load

            load()  # a forced parser that is missing fails at the import; a broken one here
            print(f"ok: profile {settings.profile} ({settings.source}); HTTP parser {LABEL}")
            return 0
        if args.command == "detect":
            from gateway.detect import detect, format_detection

            print(format_detection(detect(args.root)), end="")
            return 0
        if args.command == "render-units":
            from gateway.units import render_dropin

            print(render_dropin(_settings(args)), end="")
            return 0
        if args.command == "render-avahi":
            from gateway.discovery import avahi_service, installed_version, not_advertised

            settings = _settings(args)
            text = avahi_service(settings, installed_version())
            if text is None:
                print(
                    f"gateway: profile {settings.profile} is not advertised: "
                    f"{not_advertised(settings)}",
                    file=sys.stderr,
                )
                return 0
            print(text, end="")
            return 0
        if args.command == "reload":
            return _reload(args)
        if args.command == "token":
            import secrets

            from gateway.app.auth import hash_token

            token = secrets.token_urlsafe(32)
            line = f"{hash_token(token)} {args.name}"
            if args.file:
                _append_credentials(args.file, line)
            print(f"token: {token}\ncredentials line: {line}")
            if args.file:
                print(
                    f"added to {args.file}; serve with it: gateway serve --set "
                    f"server.credentials_file={args.file} (or set it in the profile), then "
                    f"send 'Authorization: Bearer {token}'"
                )
            return 0
        settings = _settings(args)
        # chosen once at import ($GATEWAY_HTTP_PARSER): a forced parser that is not installed
        # is a configuration error here, not a traceback from the server's imports
        import gateway.http.parser  # noqa: F401

        app = load_app(args.app or "gateway.demo:app")
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
    except ConfigError as exc:  # found once serving starts: the TLS certificate and key
        print(f"gateway: configuration error: {exc}", file=sys.stderr)
        return ConfigError.exit_code
    except OSError as exc:
        # a listener's error names its address in strerror (server.serve._bind)
        text = exc.strerror if exc.filename is None and exc.strerror else str(exc)
        print(f"gateway: cannot serve: {text}", file=sys.stderr)
        return 71
    return 0
