# Two commands do all the set-up: `make up` (install what is missing, start the hub) and
# `make test` (install what is missing, run every test). Everything lands in .venv and node_modules.
SHELL := /bin/bash
# Debian's own python3: user accounts must be able to run it (a pyenv under /root is 0700).
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SITE_ARG := $(if $(SITE),--site $(SITE),)
# GPU machines also get the GPU dashboard (jupyterlab-nvdashboard) and jupyter-resource-usage.
EXTRAS := lessons,test$(shell command -v nvidia-smi >/dev/null 2>&1 && echo ,gpu)

.PHONY: up test lint install system-deps clean

up: install
	$(BIN)/mlworkshop init $(SITE_ARG)
	$(BIN)/mlworkshop up $(SITE_ARG)

test: install
	bash scripts/podman-setup.sh >/dev/null || echo "podman cannot run here: tests/containers will be skipped"
	bash scripts/test.sh

# Fixes what ruff can fix safely and formats the tree (make test fails on what is left).
lint: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# `make up BUNDLE=DIR` installs from an offline bundle (`mlworkshop bundle create DIR` on a connected
# machine): no network, no system packages (python3-venv, nodejs and npm must be here already).
ifdef BUNDLE
install:
	PYTHONPATH=src $(PYTHON) -m mlworkshop.ops.bundle_install $(BUNDLE) --project . --python $(PYTHON)
else
install: $(STAMP) node_modules/.bin/configurable-http-proxy
endif

system-deps:
	bash scripts/system-deps.sh

$(STAMP): pyproject.toml scripts/system-deps.sh
	bash scripts/system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

node_modules/.bin/configurable-http-proxy: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) node_modules
