# hagate: `make test` sets everything up and runs the checks; `make run` sets up and runs the demo.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the tests use as real peers: command (or file) -> package.
SYSTEM_DEPS := openssl:openssl curl:curl pk12util:libnss3-tools certutil:libnss3-tools \
	chromium:chromium nginx:nginx-light systemd-analyze:systemd haproxy:haproxy \
	/usr/lib/nginx/modules/ngx_stream_module.so:libnginx-mod-stream \
	pebble:pebble pebble-challtestsrv:pebble sudo:sudo unshare:util-linux ip:iproute2 \
	podman:podman runc:runc mmdebstrap:mmdebstrap \
	/usr/bin/python3:python3
# The benchmark's load generator (ab presents a client certificate with -E).
BENCH_DEPS := ab:apache2-utils valgrind:valgrind callgrind_control:valgrind

.PHONY: all setup system-deps test lint typecheck pytest run bench clean app

all: test

# `make run` needs hagate and what it runs on; `make test` adds the test tools (pytest, mypy,
# Playwright, moto, ...) and the Debian packages the tests use as real peers.
RUN_STAMP := $(VENV)/.installed-run

$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

system-deps:
	@missing=""; for pair in $(SYSTEM_DEPS) $(EXTRA_DEPS); do \
	  cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  case $$cmd in /*) test -e $$cmd ;; *) command -v $$cmd >/dev/null 2>&1 ;; esac \
	    || missing="$$missing $$pkg"; \
	done; \
	/usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

# The new-user tests install hagate from a fresh copy of this checkout, as the docs say, with
# pip reading only this folder of wheels (no network in the test).
WHEELHOUSE := $(HOME)/.cache/hagate/wheelhouse
WHEEL_STAMP := $(VENV)/.wheelhouse

$(WHEEL_STAMP): pyproject.toml $(RUN_STAMP)
	mkdir -p $(WHEELHOUSE)
	$(BIN)/python -m pip download --quiet -d $(WHEELHOUSE) pip setuptools wheel
	$(BIN)/python -m pip wheel --quiet -w $(WHEELHOUSE) .
	rm -f $(WHEELHOUSE)/hagate-*.whl
	touch $(WHEEL_STAMP)

setup: $(STAMP) system-deps $(WHEEL_STAMP)

lint: setup
	$(BIN)/ruff check src tests bench custom_components
	$(BIN)/ruff format --check src tests bench custom_components

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest -q

test: lint typecheck pytest

# The Home Assistant app for a local install (docs: ha-app/hagate/DOCS.md): the app's folder
# with hagate's wheel beside its Dockerfile, in build/ha-app/hagate.
app: $(RUN_STAMP)
	rm -rf build/ha-app && mkdir -p build/ha-app
	cp -r ha-app/hagate build/ha-app/hagate
	$(BIN)/python -m pip wheel --quiet --no-deps -w build/ha-app/hagate .
	wheel=$$(cd build/ha-app/hagate && ls hagate-*.whl) && \
	  sed -i "s|^  HAGATE_SPEC: .*|  HAGATE_SPEC: ./$$wheel|" build/ha-app/hagate/build.yaml
	@echo "build/ha-app/hagate: copy it into Home Assistant's /addons share"

run: $(RUN_STAMP)
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
	$(BIN)/python -m bench.console_bench
	$(BIN)/python -m bench.footprint_bench
	$(BIN)/python -m bench.relay_capacity
	$(BIN)/python -m bench.wan_bench
	$(BIN)/python -m bench.front_bench
	HAGATE_DIFF_MUTATIONS=2000 HAGATE_DIFF_EXAMPLES=300 $(BIN)/pytest -q tests/differential

clean:
	rm -rf $(VENV) demo .mypy_cache .ruff_cache .pytest_cache .hypothesis
