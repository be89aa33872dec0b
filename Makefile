# Bosun: `make run` brings up a cluster, `make test` runs the whole suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEBS := etcd-server crun runc containernetworking-plugins iproute2 iptables openssl docker-registry busybox-static docker.io nginx nftables conntrack iperf3 golang-github-containers-common wrk
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean

install: $(STAMP) debs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# Install the Debian packages the suite needs, only when one is missing (idempotent, no network when complete).
debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

run: install
	./scripts/quickstart.sh

test: install
	$(BIN)/python -m pytest -q tests

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/api.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
