# Two entry points for newcomers: `make deploy` (the stack on this machine) and
# `make test` (every test). Everything else is a building block of those two.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
# Keep test state out of the user's ~/.ansible and ~/.cache.
TEST_HOME := $(abspath .cache/home)

.PHONY: venv docker-engine deploy test unit lint sanity molecule images bench bench-load clean

$(VENV)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

# Docker on this machine: the docker role installs and starts it where it is not running.
docker-engine: venv
	docker info >/dev/null 2>&1 || ansible-playbook -i inventory/local site.yml --tags docker

# Deploy on this machine: Docker first (the base image needs it), then the base image
# for self-builds (no container registry needed), then the whole stack. Run again, it
# changes nothing, in a few seconds.
deploy: docker-engine
	tests/images/build base
	ansible-playbook -i inventory/local site.yml

images:
	tests/images/build

unit: venv
	$(PY) -m pytest -q tests/unit

lint: venv
	mkdir -p $(TEST_HOME)
	yamllint -s .
	$(PY) scripts/argument-specs --check roles/*/
	HOME=$(TEST_HOME) ansible-lint --profile production
	HOME=$(TEST_HOME) scripts/check-collection-build

sanity: venv
	mkdir -p $(TEST_HOME)
	HOME=$(TEST_HOME) scripts/ansible-test-sanity

molecule: venv images
	mkdir -p $(TEST_HOME)
	HOME=$(TEST_HOME) molecule test --all

test: unit lint sanity molecule

# BENCH_ARGS="--against <git revision>": also the per-task no-op against an older checkout.
bench: docker-engine images
	HOME=$(TEST_HOME) scripts/benchmark $(BENCH_ARGS)

# The client API under a bounded load: the monolith against the workers (scale scenario).
bench-load: docker-engine images
	HOME=$(TEST_HOME) scripts/bench_load

clean:
	rm -rf .cache tests/output
