#!/bin/sh
# Build the offline release tarball: see build_release.py. Usage: deploy/build-release.sh [--out DIR] [--version V]
exec python3 "$(dirname "$0")/build_release.py" "$@"
