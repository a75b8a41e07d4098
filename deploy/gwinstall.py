# The Python half of install.sh, run with a release's own venv python (so it renders with that
# release's gateway.settings / gateway.units, also when rolling back to an older release).
#
#   gwinstall.py render --profile NAME|auto|PATH --env-file FILE --service-dropin OUT
#                       [--socket-dropin OUT] [--avahi-service OUT] [--version V] [--no-detect]
#                       [--app SPEC --app-dropin OUT] [--devices LIST --devices-dropin OUT]
#                       [--root DIR]
#       Resolves the profile as the service will (the env file's GATEWAY_* variables included,
#       its GATEWAY_PROFILE winning over --profile as EnvironmentFile= wins over Environment=),
#       imports the app the service will serve (the env file's GATEWAY_APP, else the release's
#       --app, else the demo), as `gateway check APP` does, renders the device-access drop-in,
#       writes the drop-ins atomically (only once everything checked out), and the Avahi service
#       file that advertises the profile on the LAN (removed when the profile is not reachable
#       from it: loopback only), and prints shell assignments for install.sh:
#       RESOLVED=<profile name> HEALTH_URL=<url> CREDENTIALS=<file or empty> MEMORY_MAX=<bytes>
#       APP=<MODULE:ATTR>
#   gwinstall.py envfile FILE      print the GATEWAY_* assignments of an EnvironmentFile
#
# Exit status: 0 ok, 78 configuration error (message on stderr), 2 usage.
from __future__ import annotations

import argparse
import grp
import ipaddress
import os
import re
import shlex
import stat
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

DEMO_APP = "gateway.demo:app"
SPEC_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*)?$", re.ASCII)

# --devices classes: the DeviceAllow= specifiers (device groups as /proc/devices names them),
# the group udev gives such nodes on Debian and Raspberry Pi OS, and the kernel modules that
# must be loaded when the service starts for the specifier to resolve (modprobe@.service).
DEVICE_CLASSES: dict[str, tuple[tuple[str, ...], str, tuple[str, ...]]] = {
    "serial": (
        ("char-ttyS", "char-ttyAMA", "char-ttyUSB", "char-ttyACM"),
        "dialout",
        ("usbserial", "cdc_acm"),
    ),
    "i2c": (("char-i2c",), "i2c", ("i2c-dev",)),
    "spi": (("char-spi",), "spi", ("spidev",)),
    "gpio": (("char-gpiochip",), "gpio", ()),
}
# The group of a node named by path that cannot be looked at here (staging an image; a node
# that appears later), by its name, as the same udev rules give it.
NODE_GROUPS = (
    (re.compile(r"tty(S|AMA|USB|ACM)\d+|serial\d+|serial/.+"), "dialout"),
    (re.compile(r"i2c-\d+"), "i2c"),
    (re.compile(r"spidev\d+\.\d+"), "spi"),
    (re.compile(r"gpiochip\d+|gpiomem"), "gpio"),
)
# A node path that needs no quoting or escaping in BindPaths=/DeviceAllow= (no ':', '%', '\\',
# whitespace) and cannot leave /dev.
NODE_RE = re.compile(r"/dev/[A-Za-z0-9_@+.-]+(/[A-Za-z0-9_@+.-]+)*")


class DeviceError(Exception):
    """--devices cannot be honoured (exit 78, like a bad profile)."""


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


def parse_devices(value: str) -> list[str]:
    """The --devices items (class names and /dev paths), in order, without repeats.

    Raises:
        DeviceError: an item that is neither a known class nor a plain /dev path.
    """
    items = list(dict.fromkeys(x.strip() for x in value.split(",") if x.strip()))
    if items == ["none"]:
        return []
    for item in items:
        if item in DEVICE_CLASSES:
            continue
        if not NODE_RE.fullmatch(item) or any(part in (".", "..") for part in item.split("/")):
            raise DeviceError(
                f"--devices {item}: expected {', '.join(DEVICE_CLASSES)}, a device node path "
                "such as /dev/i2c-1 (no ':', '%' or spaces: use a udev symlink), or none"
            )
    return items


def _group_names(group_file: Path) -> dict[str, int]:
    names: dict[str, int] = {}
    try:
        for line in group_file.read_text().splitlines():
            fields = line.split(":")
            if len(fields) >= 3 and fields[2].isdigit():
                names.setdefault(fields[0], int(fields[2]))
    except OSError:
        pass
    return names


def render_devices(
    items: list[str], groups: dict[str, int], node: Callable[[str], os.stat_result | None]
) -> tuple[str, list[str]]:
    """The device-access drop-in (gateway.service.d/70-devices.conf) for --devices items.

    Nodes named by path keep the unit's PrivateDevices=yes: each is bind-mounted into the
    service's private /dev (BindPaths=, "-": a node missing at start is left out, not fatal)
    and allowed in the device cgroup (DeviceAllow=), so the service sees only those. A class
    (serial, i2c, spi, gpio) matches nodes that come and go (a USB adapter), which a private
    /dev cannot follow: then PrivateDevices=no, and DevicePolicy=closed with DeviceAllow=
    char-<group> is what confines the service to those devices (and the pseudo devices).
    Either way the service gets the nodes' group (SupplementaryGroups=) and nothing else of
    the sandbox changes: still no capabilities, @privileged (with @raw-io) filtered.

    Args:
        items: from parse_devices (not empty).
        groups: the system's groups, name -> gid (its /etc/group).
        node: stat() of a device node path, or None when it cannot be looked at here.

    Returns:
        the drop-in's text and warnings for install.sh to print

    Raises:
        DeviceError: a group the nodes need does not exist, or a node only root can open.
    """
    by_gid = {gid: name for name, gid in groups.items()}
    allow: list[str] = []
    binds: list[str] = []
    need: list[str] = []
    modules: list[str] = []
    warnings: list[str] = []
    classes = [i for i in items if i in DEVICE_CLASSES]
    for item in items:
        if item in DEVICE_CLASSES:
            specs, group, mods = DEVICE_CLASSES[item]
            allow += specs
            need.append(group)
            modules += mods
            continue
        allow.append(item)
        binds.append(item)
        st = node(item)
        if st is not None:
            if not stat.S_ISCHR(st.st_mode) and not stat.S_ISBLK(st.st_mode):
                raise DeviceError(f"--devices {item}: not a device node")
            if st.st_mode & 0o006 == 0o006:
                continue  # anyone may open it: no group needed
            name = by_gid.get(st.st_gid)
            if st.st_gid == 0 or name is None:
                raise DeviceError(
                    f"--devices {item}: only root can open it (group "
                    f"{name or st.st_gid}, mode {stat.S_IMODE(st.st_mode):04o}), and the "
                    "service runs as an unprivileged dynamic user: give the node a group with "
                    "a udev rule (deploy/README.md, 'Devices')"
                )
            need.append(name)
            continue
        base = item.removeprefix("/dev/")
        guess = next((g for rx, g in NODE_GROUPS if rx.fullmatch(base)), None)
        if guess is None:
            warnings.append(
                f"--devices {item}: cannot see the node here and do not know its "
                "group; the service can open it only if its mode lets others "
                "read and write it"
            )
        else:
            need.append(guess)
    need = list(dict.fromkeys(need))
    missing = [g for g in need if g not in groups]
    if missing:
        raise DeviceError(
            f"--devices {','.join(items)}: no group {', '.join(missing)} on this system; the "
            "device nodes must belong to a group the service can be given (Raspberry Pi OS "
            "has gpio, i2c, spi and dialout; elsewhere: groupadd and a udev rule, see "
            "deploy/README.md, 'Devices')"
        )
    lines = [
        f"# Rendered by install.sh --devices {','.join(items)}: the devices the app may open,",
        "# and nothing else of the sandbox changed (deploy/README.md, 'Devices').",
    ]
    if modules:
        units = " ".join(f"modprobe@{m}.service" for m in dict.fromkeys(modules))
        lines += [
            "[Unit]",
            "# Load the drivers first: a DeviceAllow=char-... group that is not registered when",
            "# the service starts is left out of the allow list.",
            f"Wants={units}",
            f"After={units}",
        ]
    lines.append("[Service]")
    if classes:
        lines += [
            f"# {', '.join(classes)}: nodes that may appear later, which a private /dev "
            "cannot follow;",
            "# the device cgroup (DevicePolicy=closed + DeviceAllow=) confines access instead.",
            "PrivateDevices=no",
        ]
    else:
        lines += [
            "# The private /dev stays; only these nodes are bound into it.",
            "PrivateDevices=yes",
        ]
        lines += [f"BindPaths=-{path}" for path in binds]
    lines.append("DevicePolicy=closed")
    lines += [f"DeviceAllow={spec} rw" for spec in allow]
    if need:
        lines.append(f"SupplementaryGroups={' '.join(need)}")
    return "\n".join(lines) + "\n", warnings


def check_app(spec: str) -> str | None:
    """Import the app as `gateway check APP` does (from /, as the service runs): None if it
    loads, else why not (any exception at import counts: it would fail the service too)."""
    from gateway.cli import load_app
    from gateway.errors import ConfigError

    os.chdir("/")
    try:
        load_app(spec)
    except ConfigError as exc:
        return str(exc)
    except (Exception, SystemExit) as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return (
            f"app {spec!r}: importing it failed: {type(exc).__name__}: {exc} "
            f"({where.filename}, line {where.lineno})"
        )
    return None


def render(args: argparse.Namespace) -> int:
    from gateway.discovery import avahi_service, installed_version, not_advertised
    from gateway.errors import ConfigError
    from gateway.settings import load_settings
    from gateway.units import render_dropin, render_socket_dropin

    file_env = read_env_file(args.env_file)
    profile = file_env.get("GATEWAY_PROFILE") or args.profile
    if file_env.get("GATEWAY_PROFILE") and args.profile not in ("", file_env["GATEWAY_PROFILE"]):
        print(
            f"warning: {args.env_file} sets GATEWAY_PROFILE={file_env['GATEWAY_PROFILE']}, "
            f"which wins over --profile {args.profile} (EnvironmentFile= overrides the "
            "drop-in): rendering for that one",
            file=sys.stderr,
        )
    if profile == "auto" and args.no_detect:
        print(
            "error: --profile auto detects the board this runs on; when staging an image "
            "with --root, name the board's profile (see `gateway detect` on the board)",
            file=sys.stderr,
        )
        return 78
    env = {k: v for k, v in file_env.items() if k.startswith("GATEWAY_")}
    try:
        profiles_dir = args.profiles_dir if os.path.isdir(args.profiles_dir) else None
        settings = load_settings(profile, profiles_dir=profiles_dir, env=env)
        service = render_dropin(settings)
        socket = render_socket_dropin(settings) if args.socket_dropin else ""
        avahi = (
            avahi_service(settings, args.version or installed_version())
            if args.avahi_service
            else None
        )
    except (ConfigError, ValueError) as exc:
        print(f"error: profile {profile!r}: {exc}", file=sys.stderr)
        return 78

    devices = ""
    try:
        items = parse_devices(args.devices)
        if items:
            root = Path(args.root or "/")

            def node(path: str) -> os.stat_result | None:
                if args.root:
                    return None  # an image's /dev is not the board's
                try:
                    return os.stat(path)
                except OSError:
                    return None

            groups = _group_names(root / "etc/group")
            if not args.root:  # the live system may have groups from NSS as well
                groups.update({g.gr_name: g.gr_gid for g in grp.getgrall()})
            devices, warnings = render_devices(items, groups, node)
            for w in warnings:
                print(f"warning: {w}", file=sys.stderr)
    except DeviceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 78

    if args.app and not SPEC_RE.match(args.app):
        print(f"error: the release's APP file names {args.app!r}, not MODULE:ATTR", file=sys.stderr)
        return 78
    app = file_env.get("GATEWAY_APP") or args.app or DEMO_APP
    if args.app and app != args.app:
        print(
            f"warning: {args.env_file} sets GATEWAY_APP={app}, which wins over this "
            f"release's app {args.app} (EnvironmentFile= overrides the drop-in): checking "
            "that one",
            file=sys.stderr,
        )
    if (why := check_app(app)) is not None:
        print(f"error: {why}", file=sys.stderr)
        return 78

    _write(args.service_dropin, service)
    if args.socket_dropin:
        _write(args.socket_dropin, socket)
    if args.app_dropin:
        if args.app:
            _write(
                args.app_dropin,
                (
                    "# Rendered by install.sh from the release's APP file: the app this release\n"
                    "# carries in its own venv; replaced or removed with the release (upgrade,\n"
                    "# rollback). /etc/gateway/gateway.env's GATEWAY_APP still wins over it.\n"
                    f"[Service]\nEnvironment=GATEWAY_APP={args.app}\n"
                ),
            )
        else:
            Path(args.app_dropin).unlink(missing_ok=True)
    if args.devices_dropin:
        if devices:
            _write(args.devices_dropin, devices)
        else:
            Path(args.devices_dropin).unlink(missing_ok=True)
    if args.avahi_service:
        if avahi is not None:
            _write(args.avahi_service, avahi)
        else:
            Path(args.avahi_service).unlink(missing_ok=True)
            print(
                f"note: not advertised on the LAN (mDNS): {not_advertised(settings)}",
                file=sys.stderr,
            )
    s = settings.server
    values = {
        "RESOLVED": settings.profile,
        "HEALTH_URL": health_url(s.host, s.port) if s.port else "",
        "CREDENTIALS": s.credentials_file,
        "MEMORY_MAX": str(settings.systemd.memory_max_bytes),
        "APP": app,
    }
    print(" ".join(f"{k}={shlex.quote(v)}" for k, v in values.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gwinstall.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render")
    r.add_argument("--profile", default="auto")
    r.add_argument("--env-file", default="/etc/gateway/gateway.env")
    r.add_argument(
        "--profiles-dir",
        default="/etc/gateway/profiles",
        help="searched first (the staged root's /etc/gateway/profiles)",
    )
    r.add_argument("--service-dropin", required=True)
    r.add_argument("--socket-dropin", default="")
    r.add_argument(
        "--avahi-service",
        default="",
        help="write the Avahi service file here (or remove it: not advertised)",
    )
    r.add_argument("--version", default="", help="the release's version, for the TXT record")
    r.add_argument(
        "--no-detect",
        action="store_true",
        help="refuse 'auto' (staging: this machine is not the board)",
    )
    r.add_argument("--app", default="", help="the release's app, MODULE:ATTR ('' = none)")
    r.add_argument("--app-dropin", default="", help="where its GATEWAY_APP drop-in goes")
    r.add_argument(
        "--devices",
        default="",
        help="serial,i2c,spi,gpio and/or /dev paths ('' or none: no device access)",
    )
    r.add_argument("--devices-dropin", default="", help="where the device drop-in goes")
    r.add_argument(
        "--root", default="", help="the image root being staged ('' = this system): its /etc/group"
    )
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
