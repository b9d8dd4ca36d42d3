# smarthost.postfix: one entry point for the demo, the tests and their pieces.
# Every target installs what it needs (apt packages, the venv, lab images) and is a no-op when done.
# Each step runs as a stage (tests/stage.sh): a line when it starts and ends, with the time since the
# make command began; make demo and make test end with a table of every stage, also when one failed.
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
STAGE       := $(ROOT)/tests/stage.sh
# netavark + aardvark-dns: the network backend pinned in tests/images/containers.conf, whose DNS lets
# the lab's containers find each other by name; netavark 1.4 sets up its firewall rules with iptables.
# shellcheck: ansible-test's sanity test of that name and make lint check the shell scripts with it.
# python3-venv: the venvs (dev and matrix) on a Debian Python (a pyenv Python has venv built in).
APT_PACKAGES := podman runc netavark aardvark-dns iptables mmdebstrap postfix libsasl2-modules rsync nftables uidmap \
                shellcheck python3-venv

# Lab images: the name is a variable so users with a registry can use their own.
LAB_IMAGE        ?= localhost/smarthost-debian12:latest
LAB_IMAGE_TRIXIE ?= localhost/smarthost-debian13:latest
LAB_NETWORK      ?= smarthost-lab
LAB_SUBNET       ?= 10.89.77.0/24
# Every container, network and image the project creates carries this label (its value says which of
# the three: container, network, image) and a name that starts with smarthost-; clean-up removes only those.
LAB_LABEL        ?= smarthost.postfix
# The execution environment that make ee builds (from LAB_IMAGE) and runs the collection's playbooks in.
EE_IMAGE         ?= localhost/smarthost-ee:latest

ifndef STAGE_RUN_START
STAGE_RUN_START := $(shell date +%s)
endif

export CONTAINERS_CONF := $(ROOT)/tests/images/containers.conf
export ANSIBLE_COLLECTIONS_PATH := $(COLL_ROOT)
export PATH := $(BIN):$(PATH)
export LAB_IMAGE LAB_IMAGE_TRIXIE LAB_NETWORK LAB_SUBNET LAB_LABEL EE_IMAGE STAGE_RUN_START
export ANSIBLE_FORCE_COLOR ?= false
export PY_COLORS ?= 0
export PYTHONUNBUFFERED := 1

.PHONY: help setup host-packages venv images image-bookworm image-trixie network guard collection-link \
        demo demo-stages test test-stages lint yamllint ansible-lint shellcheck docs docs-check docs-lint sanity-copy \
        sanity unit matrix integration build galaxy-importer ee molecule isolation bench clean clean-lab

help:
	@echo "make demo   - set up everything, boot the lab, relay a message through an authenticated smarthost"
	@echo "make test   - the whole test suite (lint, the ansible-core matrix of sanity and unit tests, integration,"
	@echo "              build, galaxy-importer, the execution environment, molecule, isolation)"
	@echo "pieces: setup lint docs sanity unit matrix integration build galaxy-importer ee molecule isolation bench"
	@echo "        clean clean-lab"

## ---- set-up ---------------------------------------------------------------------------------
setup: host-packages venv images network guard collection-link

host-packages:
	@$(STAGE) run "setup: host packages" tests/host-packages.sh $(APT_PACKAGES)

# Made anew when requirements-dev.txt or a file it includes changed (tests/venv.sh keeps their fingerprint),
# a stage only then.
# No --no-compile: it would save about 50 s of this install, but where PYTHONDONTWRITEBYTECODE is set
# (as here) nothing would ever be byte-compiled, and every Ansible process would compile ansible-core
# from source again.
venv:
	@tests/venv.sh --up-to-date $(PYTHON_BASE) $(VENV) requirements-dev.txt || \
	  $(STAGE) run "setup: python venv" tests/venv.sh $(PYTHON_BASE) $(VENV) requirements-dev.txt

images: image-bookworm image-trixie

image-bookworm: host-packages
	@$(STAGE) run "setup: image $(LAB_IMAGE)" tests/images/build.sh bookworm $(LAB_IMAGE) $(LAB_LABEL)

image-trixie: host-packages
	@if [ -n "$(LAB_IMAGE_TRIXIE)" ]; then \
	  $(STAGE) run "setup: image $(LAB_IMAGE_TRIXIE)" tests/images/build.sh trixie $(LAB_IMAGE_TRIXIE) $(LAB_LABEL); fi

# The lab network under netavark; a network of this name left under CNI by an older checkout is moved.
network: host-packages
	@$(STAGE) run "setup: network $(LAB_NETWORK)" tests/lab-network.sh $(LAB_NETWORK) $(LAB_SUBNET) $(LAB_LABEL)

# Cheap guard: SMTP ports leaving the lab subnet are rejected, so no test can mail the Internet.
guard: host-packages
	@$(STAGE) run "setup: SMTP guard (nftables)" tests/images/smtp-guard.sh $(LAB_SUBNET)

collection-link:
	@mkdir -p $(dir $(COLL_LINK))
	@ln -sfn $(ROOT) $(COLL_LINK)

## ---- demo -----------------------------------------------------------------------------------
# Boots the default scenario's lab (kept running afterwards), converges it, then sends and reports.
# The report of where the message went (molecule/shared/demo.yml writes it) comes last, after the table.
demo:
	@$(STAGE) begin "make demo"
	@status=0; $(MAKE) --no-print-directory demo-stages || status=$$?; $(STAGE) summary || status=1; \
	  if [ "$$status" -eq 0 ]; then echo; cat $(TMP)/demo-report.txt; fi; exit "$$status"

demo-stages: setup
	@rm -f $(TMP)/demo-report.txt
	@$(STAGE) run "demo: boot and converge the lab (molecule converge)" \
	  tests/molecule-steps.sh $(BIN)/molecule converge -s default
	@$(STAGE) run "demo: send a message through the relay (molecule side-effect)" \
	  tests/molecule-steps.sh $(BIN)/molecule side-effect -s default

## ---- tests ----------------------------------------------------------------------------------
test:
	@$(STAGE) begin "make test"
	@status=0; $(MAKE) --no-print-directory test-stages || status=$$?; $(STAGE) summary || status=1; exit "$$status"

test-stages: setup lint matrix integration galaxy-importer ee isolation

lint: yamllint ansible-lint shellcheck docs-check docs-lint

# The variable tables of the roles' READMEs are rendered by aar-doc from their meta/argument_specs.yml.
docs: venv
	@tests/docs/role-docs.sh --write

docs-check: venv
	@$(STAGE) run "lint: role README variables (aar-doc, docs-check)" tests/docs/role-docs.sh --check

# Plugin and role docs as the Ansible docsite builds them: schema, markup, and every reference to a module,
# role or option of this collection, its dependency community.crypto and ansible.builtin.
# And every version_added is a released version (changelogs/changelog.yaml) or galaxy.yml's.
docs-lint: venv collection-link
	@$(STAGE) run "lint: plugin and role docs (antsibull-docs)" \
	  $(BIN)/antsibull-docs lint-collection-docs --plugin-docs --validate-collection-refs dependent $(COLL_LINK)
	@$(STAGE) run "lint: version_added against galaxy.yml and the changelog" $(BIN)/python tests/docs/version_added.py

yamllint: venv
	@$(STAGE) run "lint: yamllint" $(BIN)/yamllint -s .

ansible-lint: venv collection-link
	@$(STAGE) run "lint: ansible-lint" $(BIN)/ansible-lint --profile production --offline -q

# Every shell script of the repository, .sh or not (ansible-test's shellcheck sees only *.sh).
shellcheck: host-packages
	@$(STAGE) run "lint: shellcheck" tests/shellcheck.sh

# ansible-test runs through tests/ansible-test.sh: its pip bootstrap script, whose download host is
# unreachable, is replaced by a stand-in (tests/sanity/pip_bootstrap.py), for each ansible-core release.
sanity-copy: venv host-packages
	@mkdir -p $(SANITY_COPY)
	@rsync -a --delete --exclude-from=tests/sanity/copy-excludes.txt $(ROOT)/ $(SANITY_COPY)/

# sanity and unit: the dev venv's ansible-core only; make test runs them as part of the matrix.
sanity: sanity-copy
	@$(STAGE) run "sanity: ansible-test sanity" tests/ansible-test.sh $(VENV) $(SANITY_COPY) sanity --venv

unit: venv collection-link
	@$(STAGE) run "unit: pytest" $(BIN)/python -m pytest -q tests/unit

# ansible-test sanity and the unit tests on every ansible-core minor release from meta/runtime.yml's
# requires_ansible to the newest (tests/matrix/: one venv per release besides the dev venv's).
matrix: sanity-copy collection-link
	@tests/matrix/run.sh $(SANITY_COPY)

integration: sanity-copy host-packages
	@$(STAGE) run "integration: ansible-test integration" \
	  env ANSIBLE_COLLECTIONS_PATH= tests/ansible-test.sh $(VENV) $(SANITY_COPY) integration --local

build: venv
	@$(STAGE) run "build: collection build, install and smoke" tests/build/build-and-smoke.sh

# The checks Galaxy runs on upload (galaxy-importer, offline, no containers) on the tarball of make build.
galaxy-importer: build
	@$(STAGE) run "build: galaxy-importer on the tarball" tests/galaxy/import.sh $$(ls $(TMP)/build/dist/smarthost-postfix-*.tar.gz)

# The collection in an execution environment, as AWX/AAP runs it (tests/ee/run.sh): the image built by
# ansible-builder from the tarball of make build on the lab image (rebuilt only when its inputs changed),
# then jobs by ansible-runner in it against the lab's containers smarthost-ee-*: the relay playbook (twice),
# the probe and the SPF playbook.
ee: build image-bookworm network guard
	@$(STAGE) run "ee: build the execution environment (ansible-builder)" \
	  tests/ee/run.sh build $$(ls $(TMP)/build/dist/smarthost-postfix-*.tar.gz)
	@$(STAGE) run "ee: relay, probe and SPF jobs in the EE (ansible-runner)" tests/ee/run.sh test

# Every scenario in turn, each as a stage (its steps as stages too); stops at the first that fails.
SCENARIOS = (for s in $$(tests/molecule-scenarios.sh); do \
	  $(STAGE) run "molecule $$s" tests/molecule-steps.sh $(BIN)/molecule test -s $$s || exit; done)
CLEAN_LAB = $(STAGE) run "clean: the project's containers and network" tests/lab-clean.sh $(LAB_LABEL) $(LAB_NETWORK)

molecule: setup
	@$(SCENARIOS)

# A container named like one of the lab's hosts (relay) that the project did not create survives the
# scenarios and the lab's clean-up; the check runs also when they failed, and removes it again
# (unless it was there before the test).
isolation: setup
	@$(STAGE) run "isolation: start a container named relay, not the project's" \
	  tests/foreign-container.sh create $(LAB_IMAGE) $(LAB_LABEL)
	@status=0; { $(SCENARIOS) && $(CLEAN_LAB); } || status=$$?; \
	  $(STAGE) run "isolation: relay is still there and running" tests/foreign-container.sh check || status=1; \
	  exit "$$status"

# Only the Debian 12 image: the bench measures relays on bookworm.
bench: host-packages venv image-bookworm network guard collection-link
	@$(BIN)/python bench/run.py

# The project's containers (Molecule's and the bench's, by label) and its network; images stay.
clean-lab:
	@$(CLEAN_LAB)

clean: clean-lab
	@rm -rf $(TMP)
