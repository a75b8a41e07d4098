# make run: set up .venv and serve the demo app on the default profile (http://127.0.0.1:8080/)
# make test: set up everything the tests need and run the whole suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test venv node-deps system-deps autobahn-deps lint mutation clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# make run PORT=9000 HOST=0.0.0.0 APP=myapp:app PROFILE=pi4-2gb CREDENTIALS=.credentials
# (each optional; CREDENTIALS: a file made by `gateway token --file`, for privileged routes)
run: $(STAMP)
	$(BIN)/gateway serve $(or $(APP),gateway.demo:app) --profile $(or $(PROFILE),default) \
	  $(if $(PORT),--port $(PORT)) $(if $(HOST),--host $(HOST)) \
	  $(if $(CREDENTIALS),--set server.credentials_file=$(CREDENTIALS))

node-deps: tests/node/node_modules/.installed

tests/node/node_modules/.installed: tests/node/package.json tests/node/package-lock.json
	cd tests/node && npm ci --no-audit --no-fund --loglevel=error
	touch $@

system-deps:
	sh scripts/system-deps.sh

# autobahntestsuite in its own CPython 2.7 virtualenv (cached; fails naming what is missing)
autobahn-deps:
	bash scripts/autobahn.sh --setup-only

# The HTTP layer's tests (parsing, limits, smuggling shapes, byte-by-byte feeding, the server,
# the client, the differential harness) run twice: the whole suite with the compiled parser
# h11_mypyc (the `fast` extra, in dev), then this set again with h11 (gateway/http/parser.py;
# tests/test_http_parser.py fails if the parser that ran is not the one forced). About 30 s more.
HTTP_TESTS := tests/test_http_parser.py tests/test_http_connection.py tests/test_http_cycle.py \
  tests/test_http_server.py tests/test_keepalive_desync.py tests/test_error_paths.py \
  tests/test_body_streaming.py tests/test_backpressure.py tests/test_smoke_server.py \
  tests/test_bodyparsers_http.py tests/test_client_http.py tests/test_websocket.py \
  tests/test_differential.py tests/test_chunked_edges.py tests/test_target_edges.py \
  tests/test_http_direct_io.py tests/test_http_fast_head.py

test: $(STAMP) system-deps node-deps autobahn-deps lint
	GATEWAY_HTTP_PARSER=h11_mypyc $(BIN)/python -m pytest -q --cov --cov-report=term-missing:skip-covered
	GATEWAY_HTTP_PARSER=h11 $(BIN)/python -m pytest -q -p no:cacheprovider $(HTTP_TESTS)

# mutation testing of the security-critical modules (not part of `make test`; docs/TESTING.md
# has the scores and a verdict for every surviving mutant). Whole modules, and the functions of
# serve.py that are the LAN guard and the connection cap (the rest of serve.py is mutated too but
# not run: "not checked")
MUTANTS = "gateway.app.auth*" "gateway.body.budget*" \
	"gateway.server.serve.x*Server*_admit__*" "gateway.server.serve.x__prepare__*" \
	"gateway.server.serve.x*Server*_accept_loop__*" "gateway.server.serve.x*Server*_accepted__*" \
	"gateway.server.serve.x*Server*_reject_busy__*" \
	"gateway.ws.handshake*" "gateway.ws.engineio*" "gateway.ws.sails*" \
	"gateway.http.target*" "gateway.http.chunked*" \
	"gateway.http.dates*" "gateway.http.writer*" "gateway.http.parser*" \
	"gateway.http.connection*"
mutation: $(STAMP)
	rm -rf mutants
	nice -n 19 $(BIN)/mutmut run $(MUTANTS)
	$(BIN)/mutmut results | grep -v ': not checked$$' || true

# ruff (lint, and the format every file must have), mypy strict; part of `make test`
lint: $(STAMP)
	$(BIN)/ruff check gateway tests bench deploy scripts
	$(BIN)/ruff format --check gateway tests bench deploy scripts
	$(BIN)/mypy

clean:
	rm -rf $(VENV) tests/node/node_modules mutants .coverage .coverage.*
