# fleet: everything a fresh machine needs is installed by these targets.
# The Go builds land in ~/.cache/fleet/bin/<tool>-<version>/ (outside the repo).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all venv system-deps k8s-bin flux-bin test test-unit lint typecheck demo clusters-up clusters-down bench clean image kind-demo

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## Build (or reuse) kube-apiserver, controller manager, scheduler, etcd, kwok, kustomize, helm
## and the flux CLI.
k8s-bin:
	$(PYTHON) -m fleet.localkube.toolchain

## Build (or reuse) Flux's source-controller and kustomize-controller, for `make bench` only.
flux-bin:
	$(PYTHON) -m fleet.localkube.toolchain flux-controllers

## System packages the integration tests need: sshd for the Git-over-SSH tests, PostgreSQL
## (initdb and postgres, run by the tests as processes) for the hub's PostgreSQL backend.
system-deps:
	@if [ -x /usr/sbin/sshd ]; then :; \
	elif [ "$$(id -u)" -ne 0 ]; then \
		echo "system-deps: not root, cannot install openssh-server; SSH tests will be skipped"; \
	else \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server; \
	fi
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" -ne 0 ]; then \
		echo "system-deps: not root, cannot install postgresql; PostgreSQL hub tests will be skipped"; \
	else \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	fi

## The whole test suite: unit tests and tests against real local control planes.
test: venv system-deps k8s-bin
	$(BIN)/pytest

## Only the fast tests of the pure core.
test-unit: venv
	$(BIN)/pytest -m unit

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

## The main job: clusters dev, staging, prod + a Git server + one agent each (Ctrl-C stops).
demo: venv k8s-bin
	$(BIN)/fleet demo up

## MTTP of fleet, the floor and Flux at 100, 500 and 1,000 apps (bench/README.md). Long:
## run it on a quiet machine.
bench: venv k8s-bin flux-bin
	$(BIN)/python -m bench.mttp --flux

## The fleet image (Dockerfile); needs Docker, which this repository's CI lacks.
## TOOLS=cache copies kustomize and helm from ~/.cache/fleet/bin instead of building them.
IMAGE ?= fleet:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
TOOLS ?= build
# The versions come from the one place they are pinned: fleet/localkube/toolchain.py.
KUSTOMIZE_VERSION := $(shell sed -n 's/^KUSTOMIZE_VERSION = "\(.*\)"/\1/p' fleet/localkube/toolchain.py)
HELM_VERSION := $(shell sed -n 's/^HELM_VERSION = "\(.*\)"/\1/p' fleet/localkube/toolchain.py)
FLEET_BIN_CACHE ?= $${FLEET_CACHE_DIR:-$${XDG_CACHE_HOME:-$$HOME/.cache}/fleet}/bin
image:
	@command -v docker >/dev/null 2>&1 || { echo "✗ make image needs Docker (not available here)"; exit 1; }
	rm -rf .image-tools && mkdir -p .image-tools
	if [ "$(TOOLS)" = cache ]; then cp $(FLEET_BIN_CACHE)/kustomize-$(KUSTOMIZE_VERSION)/kustomize $(FLEET_BIN_CACHE)/helm-$(HELM_VERSION)/helm .image-tools/; fi
	docker build --build-arg TOOLS=$(TOOLS) --build-arg KUSTOMIZE_VERSION=$(KUSTOMIZE_VERSION) \
		--build-arg HELM_VERSION=$(HELM_VERSION) -t $(IMAGE) .

## The demo on three kind clusters with the agent in each as a Deployment (needs Docker
## and kind; see hack/kind-demo.sh).
kind-demo: venv
	PATH=$(CURDIR)/$(BIN):$$PATH IMAGE=$(IMAGE) hack/kind-demo.sh

clusters-up: venv k8s-bin
	$(BIN)/fleet dev clusters up dev staging prod

clusters-down: venv
	$(BIN)/fleet dev clusters down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
