"""Run another server script with the compiled parser in place of h11: ``h11_mypyc`` (the
module ``gateway[fast]`` installs) is imported under the name ``h11`` first, so the script's own
``import h11`` gets it. For the side-by-side harness: the bare trio+h11 loop of
../shared/bench with the same parser the gateway uses with its extra, e.g.
    --server 'bare-mypyc=.venv/bin/python bench/with_compiled_h11.py {peers}/bare_trio.py {port}'

With ``--gateway-loaded`` first, the script runs in the process the gateway would have: every
module ``gateway serve bench.app:app`` loads is imported, the demo routes are built, and the
gateway's run-time tunings are applied as its runner applies them (glibc's mmap threshold, the
collector's frozen start-up objects and young threshold, ``malloc_trim``). It tells whether the
gateway's process, rather than its request path, changes what a request costs:
    --server 'bare-in-gateway=.venv/bin/python bench/with_compiled_h11.py --gateway-loaded
              {peers}/bare_trio.py {port}'
A benchmark helper, not a test.
"""

from __future__ import annotations

import os
import runpy
import sys

import h11_mypyc

sys.modules["h11"] = h11_mypyc
args = sys.argv[1:]
if args[:1] == ["--gateway-loaded"]:
    args = args[1:]
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import bench.app  # noqa: F401  (the routes: the app package, the router, responses)
    import gateway.cli  # noqa: F401  (what `gateway serve` imports before it serves)
    import gateway.server.http_session  # noqa: F401
    from gateway.body.budget import release_free_memory, tune_allocator
    from gateway.server.runner import tune_collector

    tune_allocator()
    tune_collector()
    release_free_memory()
script = args[0]
sys.argv = args
runpy.run_path(script, run_name="__main__")
