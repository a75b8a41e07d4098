"""Run another server script with the compiled parser in place of h11: ``h11_mypyc`` (the
module ``gateway[fast]`` installs) is imported under the name ``h11`` first, so the script's own
``import h11`` gets it. For the side-by-side harness: the bare trio+h11 loop of
../shared/bench with the same parser the gateway uses with its extra, e.g.
    --server 'bare-mypyc=.venv/bin/python bench/with_compiled_h11.py {peers}/bare_trio.py {port}'
A benchmark helper, not a test.
"""

from __future__ import annotations

import runpy
import sys

import h11_mypyc

sys.modules["h11"] = h11_mypyc
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
