# fleet: everything a fresh machine needs is installed by these targets.
# The Go builds land in ~/.cache/fleet/bin/<tool>-<version>/ (outside the repo).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all venv lock system-deps k8s-bin flux-bin test test-unit lint typecheck demo clusters-up clusters-down bench clean image kind-demo

all: test

LOCK   := requirements.lock

# The lock pins every Python dependency (and the setuptools that builds fleet itself);
# pip installs exactly it with the machine's own pip configuration, then fleet editable
# without resolving anything again.
$(STAMP): $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

## Re-resolve the dependency ranges in pyproject.toml into requirements.lock (uv, from the
## lock itself); commit the result. No index URL is written into the lock.
lock: venv
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 \
		--no-emit-index-url --no-emit-find-links --custom-compile-command "make lock" \
		-o $(LOCK)

## Build (or reuse) the Go tools the tests and the demo run (fleet/localkube/toolchain.py):
## Kubernetes, etcd, kwok, kustomize, helm, the flux CLI, Prometheus, registry, sops, age.
k8s-bin:
	$(PYTHON) -m fleet.localkube.toolchain

## Build (or reuse) Flux's source-controller and kustomize-controller, for `make bench` only.
flux-bin:
	$(PYTHON) -m fleet.localkube.toolchain flux-controllers

## System packages the integration tests need: sshd (and ssh-keygen, ssh-keyscan) for the
## Git-over-SSH tests, PostgreSQL (initdb and postgres, run by the tests as processes) for
## the hub's PostgreSQL backend, gnupg for the SOPS test with a PGP key, and, as root, the
## `postgres` user PostgreSQL runs as.
## Fails, naming what is missing, when it cannot install: the tests never skip for them.
system-deps:
	@missing=""; \
	[ -x /usr/sbin/sshd ] && command -v ssh-keygen >/dev/null && command -v ssh-keyscan >/dev/null \
		|| missing="$$missing openssh-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v gpg >/dev/null 2>&1 || missing="$$missing gnupg"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" -ne 0 ]; then \
			echo "✗ system-deps: missing$$missing; not root, so cannot install them." >&2; \
			echo "  Install them (sudo apt-get install$$missing) or run \`sudo make system-deps\`." >&2; \
			exit 1; \
		fi; \
		echo "system-deps: installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing \
			|| { echo "✗ system-deps: apt-get could not install$$missing" >&2; exit 1; }; \
	fi
	@if [ "$$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then \
		echo "system-deps: creating the system user postgres (PostgreSQL refuses to run as root)"; \
		useradd --system --user-group --no-create-home --shell /usr/sbin/nologin postgres \
			|| { echo "✗ system-deps: could not create the user postgres" >&2; exit 1; }; \
	fi

## The whole test suite, fast tiers first (unit, integration, kube, e2e), with branch
## coverage of fleet, agent and hub (also in the processes the tests start): printed at the
## end and written to coverage/coverage.txt (and coverage/coverage.json). A test that would
## skip for a missing system dependency fails the run; FLEET_ALLOW_SKIPS=1 allows skips on a
## developer machine (never in CI).
test: venv system-deps k8s-bin
	rm -rf coverage .coverage .coverage.*
	$(BIN)/pytest --cov --cov-report=term --cov-report=json:coverage/coverage.json; \
	status=$$?; mkdir -p coverage; $(BIN)/coverage report > coverage/coverage.txt \
		&& echo "coverage report written to coverage/coverage.txt"; exit $$status

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
