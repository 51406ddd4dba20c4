# hagate: `make test` sets everything up and runs the checks; `make run` sets up and runs the demo.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the tests use as real peers: command -> package.
SYSTEM_DEPS := openssl:openssl curl:curl pk12util:libnss3-tools certutil:libnss3-tools \
	chromium:chromium nginx:nginx-light systemd-analyze:systemd \
	pebble:pebble pebble-challtestsrv:pebble
# The benchmark's load generator (ab presents a client certificate with -E).
BENCH_DEPS := ab:apache2-utils valgrind:valgrind callgrind_control:valgrind

.PHONY: all setup system-deps test lint typecheck pytest run bench clean

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

system-deps:
	@missing=""; for pair in $(SYSTEM_DEPS) $(EXTRA_DEPS); do \
	  cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

setup: $(STAMP) system-deps

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest -q

test: lint typecheck pytest

run: setup
	$(BIN)/python -m hagate.demo

bench: $(STAMP)
	$(MAKE) system-deps EXTRA_DEPS="$(BENCH_DEPS)"
	$(BIN)/python -m bench.rules_bench
	$(BIN)/python -m bench.gateway_bench
	$(BIN)/python -m bench.steps_bench
	$(BIN)/python -m bench.baseline_bench
	$(BIN)/python -m bench.instructions_bench
	$(BIN)/python -m bench.framing_bench
	$(BIN)/python -m bench.tunnel_bench
	$(BIN)/python -m bench.alexa_bench
	$(BIN)/python -m bench.events_bench
	$(BIN)/python -m bench.footprint_bench
	$(BIN)/python -m bench.relay_capacity
	$(BIN)/python -m bench.wan_bench
	HAGATE_DIFF_MUTATIONS=2000 HAGATE_DIFF_EXAMPLES=300 $(BIN)/pytest -q tests/differential

clean:
	rm -rf $(VENV) demo .mypy_cache .ruff_cache .pytest_cache .hypothesis
