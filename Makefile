# Quick start: `make demo` runs the dashboard on a simulated cluster;
# `make test` runs the whole suite. Both set up what they need first.

SHELL := /bin/bash
VENV := .venv
# extra arguments for pytest: make test PYTEST_ARGS='-x -k storm'
PYTEST_ARGS ?=

.PHONY: help setup setup-test demo demo-detached stop test test-fast lock lint format clean

help:
	@echo "make demo           set up, then run the dashboard on a simulated cluster (Ctrl-C stops)"
	@echo "make demo-detached  the same, left running in the background"
	@echo "make stop           stop what the demo started"
	@echo "make test           set up, then ruff and the whole suite: on SQLite, then its"
	@echo "                    database tests again on PostgreSQL"
	@echo "make test-fast      the inner loop: no slow, no browser tests, SQLite only"
	@echo "make lock           refresh requirements/constraints.txt, the tested set"
	@echo "make lint           ruff check and ruff format --check"
	@echo "make format         ruff format and ruff check --fix"
	@echo "make clean          stop, then remove var/ and $(VENV)"

# The virtualenv with the project and its test tools, ZooKeeper and Graphviz.
setup:
	@bash scripts/bootstrap.sh zookeeper graphviz

# ... and what the tests drive: Chromium, Redis and PostgreSQL.
setup-test:
	@bash scripts/bootstrap.sh zookeeper graphviz chromium redis postgresql

demo: setup
	@bash scripts/demo.sh

demo-detached: setup
	@bash scripts/demo.sh --detach

stop:
	@bash scripts/stop.sh

# The whole suite on SQLite and, side by side with it, its database tests on a
# throwaway PostgreSQL (scripts/test.sh says which and why).
test: setup-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@bash scripts/test.sh $(PYTEST_ARGS)

# pytest's status 5 means it collected no test: not a failure of the code.
test-fast: setup-test
	$(VENV)/bin/pytest -m 'not slow and not browser' $(PYTEST_ARGS) \
		|| { rc=$$?; [[ $$rc == 5 ]] || exit $$rc; }

lock:
	@bash scripts/lock.sh

lint:
	@bash scripts/bootstrap.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format:
	@bash scripts/bootstrap.sh
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean: stop
	rm -rf var $(VENV)
