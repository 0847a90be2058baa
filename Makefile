# One quality gate (`make test`) and the main job (`make up`). See README.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACK ?= dev
DOCKERFILES := $(shell find . -path ./$(VENV) -prune -o \( -name 'Dockerfile' -o -name '*.Dockerfile' \) -print)

.PHONY: setup test lint typecheck dockerfiles schema workflows pytest up demo demo-down demo-images check image-budget bench mutation lock clean

setup: $(VENV)/.installed

# Reinstall whenever the declared or locked dependencies change.
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

## The gate: lint, types, Dockerfiles, project schema, workflows, the manual, tests.
test: lint typecheck dockerfiles schema workflows docs-build pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy depot tests scripts policy

dockerfiles: setup
	$(BIN)/hadolint --config .hadolint.yaml $(DOCKERFILES)

schema: setup
	$(BIN)/python -m depot.tools.check_project_schema Pulumi.yaml schemas/pulumi-project.json

# actionlint for correctness; zizmor (offline: no GitHub API) for security findings.
workflows: setup
	$(BIN)/actionlint
	$(BIN)/zizmor --offline --min-severity low .github/workflows

# The manual in strict mode: a broken link or anchor, a page missing from the nav, or a reference
# page the code cannot generate fails the gate. Built into a temporary folder, then removed. Not
# --quiet: mkdocs counts the warnings that strict mode fails on only where it prints them.
.PHONY: docs-build docs
docs-build: setup
	site=$$(mktemp -d) && trap 'rm -rf "$$site"' EXIT && NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir "$$site"

## The manual at http://127.0.0.1:8000, rebuilt as its pages change.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# The engine tier first (skipped with its reason where no engine answers) on three workers, one
# per part: the single-engine tests, in order (they share the engine's fixed names); the
# multi-node module (its own dockerds); the private modules (their own names or dockerd). Three
# on two cores: the tier mostly waits. The path makes the controller load the tier's conftest,
# which prints the figures. Then the unit tier on both cores: many small, independent tests.
pytest: setup
	$(BIN)/pytest -m engine -n 3 tests/engine
	$(BIN)/pytest -n 2 -m "not engine"

## The main job: `pulumi up` of $(STACK) against the local Docker daemon.
up: setup
	STACK=$(STACK) scripts/up.sh

## A demo of the depot on this machine's Docker Engine, no Pulumi CLI: the dev stack's Compose
## export on the engine tier's stand-in images, ports on 127.0.0.1 (docs/demo.md). The first run
## builds the stand-ins (root and debootstrap, once). DEMO_DIR= for another folder than /var/tmp's.
demo: setup
	$(BIN)/python -m depot.demo up $(if $(DEMO_DIR),--dir "$(DEMO_DIR)")

## Removes the demo's containers, networks and volumes (nothing else's), and its folder.
demo-down: setup
	$(BIN)/python -m depot.demo down $(if $(DEMO_DIR),--dir "$(DEMO_DIR)")

## Only the stand-ins' build, the step that needs root and debootstrap: `sudo make demo-images`.
demo-images: setup
	$(BIN)/python -m depot.demo images

## The policy rules on a stack's offline plan (STACK=prod): exit 1 on a mandatory violation.
check: setup
	$(BIN)/depot check --stack $(STACK)

## Built images against the reference's 10-20 MB (needs a Docker engine and `make up`).
image-budget: setup
	$(BIN)/python -m depot.tools.image_budget --stack $(STACK)

## Plan speed: depot plan vs direct registration, and 20 vs 200 services.
bench: setup
	$(BIN)/python scripts/bench_plan.py

## Do the unit tests catch a deliberate bug? One mutant at a time in the rules, the review, the
## settings and the types (scripts/mutation.py). Slow, so not in `make test`: a seeded sample of
## each module (~20 min with JOBS=2); FULL=1 for every mutant, MODULES=depot/types.py for one.
mutation: setup
	nice -n 10 $(BIN)/python scripts/mutation.py $(if $(FULL),--all) --jobs $(or $(JOBS),2) $(MODULES)

lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet ".[dev]"
	{ echo "# Exact versions for reproducible installs (make setup). Regenerate after changing"; \
	  echo "# pyproject.toml: make lock"; \
	  .lock-venv/bin/pip freeze | grep -iv '^depot-infra'; } > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
