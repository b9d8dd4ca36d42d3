# smarthost.postfix: one entry point for the demo, the tests and their pieces.
# Every target installs what it needs (apt packages, the venv, lab images) and is a no-op when done.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ROOT        := $(CURDIR)
VENV        := $(ROOT)/.venv
BIN         := $(VENV)/bin
PYTHON_BASE ?= python3
TMP         := $(ROOT)/.tmp
# ansible-test and FQCN lookups need the collection under ansible_collections/<ns>/<name>.
COLL_ROOT   := $(TMP)/collections
COLL_LINK   := $(COLL_ROOT)/ansible_collections/smarthost/postfix
SANITY_COPY := /var/tmp/smarthost-postfix-test/ansible_collections/smarthost/postfix
STAMP       := $(TMP)/stamps
APT_PACKAGES := podman runc mmdebstrap postfix libsasl2-modules rsync nftables uidmap

# Lab images: the name is a variable so users with a registry can use their own.
LAB_IMAGE        ?= localhost/smarthost-debian12:latest
LAB_IMAGE_TRIXIE ?= localhost/smarthost-debian13:latest
LAB_NETWORK      ?= smarthost-lab
LAB_SUBNET       ?= 10.89.77.0/24

export CONTAINERS_CONF := $(ROOT)/tests/images/containers.conf
export ANSIBLE_COLLECTIONS_PATH := $(COLL_ROOT)
export PATH := $(BIN):$(PATH)
export LAB_IMAGE LAB_IMAGE_TRIXIE LAB_NETWORK LAB_SUBNET
export ANSIBLE_FORCE_COLOR ?= false
export PY_COLORS ?= 0

.PHONY: help setup host-packages venv images image-bookworm image-trixie network guard collection-link \
        demo test lint yamllint ansible-lint docs docs-check sanity-copy sanity unit integration build molecule bench clean

help:
	@echo "make demo   - set up everything, boot the lab, relay a message through an authenticated smarthost"
	@echo "make test   - the whole test suite (lint, sanity, unit, integration, build, molecule)"
	@echo "pieces: setup lint sanity unit integration build molecule bench clean"

## ---- set-up ---------------------------------------------------------------------------------
setup: host-packages venv images network guard collection-link

host-packages: $(STAMP)/apt
$(STAMP)/apt: Makefile
	@mkdir -p $(STAMP)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing host packages: $$missing"; \
	  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@touch $@

venv: $(STAMP)/venv
# No --no-compile: it would save about 50 s of this install, but where PYTHONDONTWRITEBYTECODE is set
# (as here) nothing would ever be byte-compiled, and every Ansible process would compile ansible-core
# from source again.
$(STAMP)/venv: requirements-dev.txt
	@mkdir -p $(STAMP)
	@[ -x $(BIN)/python ] || $(PYTHON_BASE) -m venv $(VENV)
	@$(BIN)/pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	@$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt 2>&1 | grep -v '^WARNING: Location' || true
	@$(BIN)/python -c 'import ansible, molecule, passlib, aiosmtpd'
	@touch $@

images: image-bookworm image-trixie

image-bookworm: host-packages
	@tests/images/build.sh bookworm $(LAB_IMAGE)

image-trixie: host-packages
	@if [ -n "$(LAB_IMAGE_TRIXIE)" ]; then tests/images/build.sh trixie $(LAB_IMAGE_TRIXIE); fi

network: host-packages
	@podman network exists $(LAB_NETWORK) || podman network create --subnet $(LAB_SUBNET) $(LAB_NETWORK) >/dev/null

# Cheap guard: SMTP ports leaving the lab subnet are rejected, so no test can mail the Internet.
guard: host-packages
	@tests/images/smtp-guard.sh $(LAB_SUBNET)

collection-link:
	@mkdir -p $(dir $(COLL_LINK))
	@ln -sfn $(ROOT) $(COLL_LINK)

## ---- demo -----------------------------------------------------------------------------------
# Boots the default scenario's lab (kept running afterwards), converges it, then sends and reports.
demo: setup
	@$(BIN)/molecule converge -s default
	@$(BIN)/molecule side-effect -s default

## ---- tests ----------------------------------------------------------------------------------
test: setup lint sanity unit integration build molecule
	@echo "make test: all checks passed"

lint: yamllint ansible-lint docs-check

# README variable tables are generated from the roles' meta/argument_specs.yml.
docs: venv
	@$(BIN)/python tests/docs/role_vars.py --write

docs-check: venv
	@$(BIN)/python tests/docs/role_vars.py --check

yamllint: venv
	@$(BIN)/yamllint -s .

ansible-lint: venv collection-link
	@$(BIN)/ansible-lint --profile production --offline -q

# ansible-test needs its pip bootstrap script, whose download host is unreachable: use a stand-in.
$(STAMP)/get-pip: tests/sanity/get_pip_standin.py | venv
	@mkdir -p $(STAMP) $(ROOT)/.cache/pip-wheel ~/.ansible/test/cache
	@ls $(ROOT)/.cache/pip-wheel/pip-24.2-*.whl >/dev/null 2>&1 || \
	  $(BIN)/pip download -q --no-deps -d $(ROOT)/.cache/pip-wheel pip==24.2 2>&1 | grep -v '^WARNING: Location' || true
	@sed 's#@WHEEL_DIR@#$(ROOT)/.cache/pip-wheel#' tests/sanity/get_pip_standin.py > ~/.ansible/test/cache/get_pip_24_2.py
	@touch $@

sanity-copy: venv host-packages
	@mkdir -p $(SANITY_COPY)
	@rsync -a --delete --exclude-from=tests/sanity/copy-excludes.txt $(ROOT)/ $(SANITY_COPY)/

sanity: sanity-copy $(STAMP)/get-pip
	@cd $(SANITY_COPY) && $(BIN)/ansible-test sanity --venv --python 3.11 --color no

unit: venv collection-link
	@$(BIN)/python -m pytest -q tests/unit

integration: sanity-copy $(STAMP)/get-pip host-packages
	@cd $(SANITY_COPY) && ANSIBLE_COLLECTIONS_PATH= $(BIN)/ansible-test integration --local --python 3.11 --color no

build: venv
	@tests/build/build-and-smoke.sh

molecule: setup
	@for s in $$(tests/molecule-scenarios.sh); do \
	  echo "== molecule scenario $$s"; $(BIN)/molecule test -s $$s; done

# Only the Debian 12 image: the bench measures relays on bookworm.
bench: host-packages venv image-bookworm network guard collection-link
	@$(BIN)/python bench/run.py

clean:
	@for s in $$(tests/molecule-scenarios.sh 2>/dev/null); do $(BIN)/molecule destroy -s $$s || true; done
	@rm -rf $(TMP)
