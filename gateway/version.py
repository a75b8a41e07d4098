# The gateway's version when running from a source tree (a built release reads its own from the
# installed distribution's metadata, gateway.discovery.installed_version).
# Must not: import anything of gateway (the package and gateway.discovery both read it here).
from __future__ import annotations

__version__ = "0.1.0"
