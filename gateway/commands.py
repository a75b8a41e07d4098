# The `gateway` command line as a table (commands, their options and help) and its help text.
# Owns: what the commands and options are called and how `--help` describes them; shared by
# gateway.cli and the subcommands that parse their own arguments (gateway.client.cli).
# Must not: import gateway.cli or any subcommand (they import this), or do any I/O.
from __future__ import annotations

from typing import Final

# The command line, as a table. Not argparse: importing it (with gettext) costs the server about
# 0.3 MiB of RSS for its whole life, for parsing a handful of options once at start.
_PROFILE_OPTIONS: Final = {
    "--profile": (
        "NAME",
        "hardware profile name, path to a .toml, or 'auto' "
        "(default: $GATEWAY_PROFILE or 'default')",
    ),
    "--host": ("HOST", "listen address(es), comma-separated (server.host)"),
    "--port": ("PORT", "TCP port, 0 for any free port (server.port)"),
    "--unix": ("PATH", "also listen on this Unix socket (server.unix_path)"),
    "--set": (
        "SECTION.KEY=VALUE",
        "override one setting, e.g. --set http.idle_timeout_s=5 (repeatable)",
    ),
}
# command -> (help, (positional, its help) or None, options)
COMMANDS: Final[dict[str, tuple[str, tuple[str, str] | None, dict[str, tuple[str, str]]]]] = {
    "serve": (
        "serve an app: gateway serve MODULE:ATTR",
        (
            "app",
            "MODULE:ATTR imported from the current directory; MODULE alone means "
            "MODULE:app; a callable ATTR is called once to make the app (a factory) "
            "(default: $GATEWAY_APP or the demo app; log level: $GATEWAY_LOG_LEVEL, "
            "e.g. DEBUG)",
        ),
        _PROFILE_OPTIONS,
    ),
    "settings": ("print the resolved settings of a profile", None, _PROFILE_OPTIONS),
    "check": (
        "check a profile (and optionally an app) and exit",
        ("app", "MODULE:ATTR to import as well"),
        _PROFILE_OPTIONS,
    ),
    "detect": (
        "detect the board and print the profile it gets",
        None,
        {"--root": ("PATH", "root of the system to inspect (default: $GATEWAY_ROOT or /)")},
    ),
    "render-units": ("print the systemd drop-in for a profile", None, _PROFILE_OPTIONS),
    "render-avahi": (
        "print the Avahi service file that advertises a profile on the LAN (mDNS/DNS-SD)",
        None,
        _PROFILE_OPTIONS,
    ),
    "reload": (
        "reload a running server's profile and wait for the outcome (ExecReload=)",
        None,
        {
            "--pid": ("PID", "the server's process id (systemd: $MAINPID)"),
            "--timeout": ("SECONDS", "how long to wait for the outcome (default: 30)"),
        },
    ),
    "request": (
        "send one request, httpie style: gateway request [METHOD] URL [ITEMS]",
        (
            "url",
            "[METHOD] URL [Header:value key==param key=value key:=json @file] "
            "(the command's own parser: gateway.client.cli)",
        ),
        {
            "--json": ("", "send the fields as a JSON object (the default)"),
            "--form": ("", "send the fields as an urlencoded form"),
            "--token": ("TOKEN", "bearer token (default: $GATEWAY_TOKEN)"),
            "--timeout": ("SECONDS", "total deadline (default: 30; 0: none)"),
            "--socket": ("", "send it as a Sails virtual request over /socket.io/"),
            "--output": ("FILE", "save the body to FILE (with a progress bar)"),
            "--insecure": ("", "do not check TLS certificates"),
            "--ca-file": ("PATH", "PEM CA certificates to trust"),
            "--unix-socket": ("PATH", "connect to this Unix socket"),
            "--no-follow": ("", "do not follow redirects"),
        },
    ),
    "token": (
        "make a new privilege token and its credentials-file line",
        None,
        {
            "--name": ("NAME", "name written after the hash (default: admin)"),
            "--file": (
                "PATH",
                "also append the line to this credentials file (created "
                "with mode 0600); name it in the profile's "
                "server.credentials_file",
            ),
        },
    ),
}


def usage(command: str | None = None) -> str:
    """The help text of ``gateway`` or of one of its commands."""
    if command is None:
        lines = [
            "usage: gateway COMMAND [ARGS]",
            "",
            "Request gateway for embedded devices",
            "",
            "commands:",
        ]
        lines += [f"  {name:14s}{entry[0]}" for name, entry in COMMANDS.items()]
        lines += ["", "gateway COMMAND --help describes a command."]
        return "\n".join(lines) + "\n"
    text, positional, options = COMMANDS[command]
    opts = " ".join(
        f"[{flag} {meta}]" if meta else f"[{flag}]" for flag, (meta, _) in options.items()
    )
    arg = f" [{positional[0].upper()}]" if positional else ""
    lines = [f"usage: gateway {command}{arg} {opts}", "", text, ""]
    if positional:
        lines.append(f"  {positional[0].upper():26s}{positional[1]}")
    lines += [
        f"  {(flag + ' ' + meta).strip():26s}{help_}" for flag, (meta, help_) in options.items()
    ]
    return "\n".join(lines) + "\n"
