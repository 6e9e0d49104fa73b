# Broker's developer and CI entry points; CI runs `make test` (see .ci/run).
#
#   make run     start a node on http://127.0.0.1:8080/ (BROKER_PORT=... to move it)
#   make test    lint, type-check, then the test suite
#   make check   validate .crossbar/config.json without starting a node
#   make cluster  redis-server, three nodes (8081-8083) and nginx on http://127.0.0.1:8080/; Ctrl-C stops all
#                (CLUSTER_ARGS="--port 9080 --node-ports 9081,9082,9083 --redis-port 9390" to move it)
#   make sdk-venv  .venv-sdk: Broker without extras (no crossbar), for the SDK's tests
#   make js      clients/js: npm ci, build dist/broker.js (served at / by the node), unit tests
#   make faults  the fault suite's long runs (tests/faults/), written to docs/reliability.md
#   make dist    dist/: the wheel and sdist (python -m build) and broker-client-*.tgz (npm pack)
#   make constraints  regenerate constraints/node.txt (the node's pinned dependency set) from a fresh install

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# present once the project is installed into the venv; redone when pyproject.toml or the pins change
STAMP := $(VENV)/.installed
# the node's whole dependency set, pinned: what the suite runs is what a production install gets
CONSTRAINTS := constraints/node.txt
# the publisher SDK's venv: the base install only, so its tests prove crossbar is not needed
SDK_VENV := .venv-sdk
SDK_BIN := $(SDK_VENV)/bin
SDK_STAMP := $(SDK_VENV)/.installed
# the browser client: installed, bundled and unit-tested; redone when its lockfile or sources change
JS := clients/js
JS_STAMP := $(JS)/dist/.built
JS_SOURCES := $(JS)/package.json $(JS)/package-lock.json $(JS)/build.mjs \
	$(wildcard $(JS)/src/*.js $(JS)/src/dashboard/*.js $(JS)/src/shims/*.cjs $(JS)/test/*.test.mjs)

.PHONY: venv sdk-venv js chromium nginx redis systemd bench-deps run cluster lint test check dist constraints bench bench-quick faults clean

venv: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -e '.[node,test]'
	touch $(STAMP)

sdk-venv: $(SDK_STAMP)

$(SDK_STAMP): pyproject.toml
	test -x $(SDK_BIN)/python || $(PYTHON) -m venv $(SDK_VENV)
	$(SDK_BIN)/python -m pip install -q --upgrade pip
	$(SDK_BIN)/python -m pip install -q -e . pytest pytest-timeout "websockets>=13,<16"
	touch $(SDK_STAMP)

js: $(JS_STAMP)

$(JS_STAMP): $(JS_SOURCES)
	cd $(JS) && npm ci && npm run build && npm test
	touch $(JS_STAMP)

# the browser tests drive Debian's chromium (playwright can't download a browser here)
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# tests/test_reverse_proxy.py runs docs/operators.md's nginx block in front of a node (its own nginx.conf,
# ports and pid file: the packaged service is not used)
nginx:
	@test -x /usr/sbin/nginx || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx; }

# the Redis engine's tests (tests/redisserver.py) start Debian's redis-server on a free port
redis:
	@command -v redis-server >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }

# tests/test_systemd.py checks deploy/systemd/ with `systemd-analyze verify` (no running systemd needed)
systemd:
	@command -v systemd-analyze >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd; }

run: venv js
	$(BIN)/broker run

# docs/cluster.md: one Redis, three nodes, docs/operators.md's multi-node nginx block in front
cluster: venv js nginx redis
	$(BIN)/python -m tools.cluster $(CLUSTER_ARGS)

lint: venv
	$(BIN)/ruff check broker tests tools
	$(BIN)/ruff format --check broker tests tools
	$(BIN)/mypy broker tools

# tests/sdk asserts crossbar is absent, so it runs in .venv-sdk (against nodes from .venv)
test: venv sdk-venv js chromium nginx redis systemd lint
	$(BIN)/python -m pytest --ignore=tests/sdk
	BROKER_NODE_BIN=$(CURDIR)/$(BIN)/broker $(SDK_BIN)/python -m pytest tests/sdk

check: venv
	$(BIN)/broker check

# what a deployment installs (docs/operators.md, "Running in production"); tests/test_packaging*.py
# build and install the same into fresh environments
dist: venv js
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .
	cd $(JS) && npm pack --pack-destination $(CURDIR)/dist

# after changing the node extra's pins in pyproject.toml: a fresh venv, nothing constrained, frozen
# (pip and broker itself left out); then `make test`
constraints:
	rm -rf .venv-constraints
	$(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/python -m pip install -q '.[node]'
	{ sed -n '/^#/p' $(CONSTRAINTS); .venv-constraints/bin/python -m pip freeze --all --exclude pip --exclude broker; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf .venv-constraints

# `make bench` only: the alternatives it measures (python-socketio, Django Channels + Redis), plots, py-spy
BENCH_STAMP := $(VENV)/.bench-installed

bench-deps: $(BENCH_STAMP)
	@command -v redis-server >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[node,test,bench]'
	touch $(BENCH_STAMP)

# not part of `make test`: rewrites docs/benchmarks.md and its plots (about 20 min; bench-quick about 7)
bench: bench-deps js
	$(BIN)/python -m bench.run

bench-quick: bench-deps js
	$(BIN)/python -m bench.run --quick

# not part of `make test` (which runs the same scenarios at a bounded size): the fault suite's long
# versions, written to docs/reliability.md
faults: venv js
	$(BIN)/python -m tests.faults.run

clean:
	rm -rf $(VENV) $(SDK_VENV) dist build .pytest_cache .mypy_cache .ruff_cache broker.egg-info .crossbar/run .cluster
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
