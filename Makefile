# cxthemes: `make run` and `make test` set everything up on a fresh machine (both idempotent).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install base-model model student run test test-fast lint audit train evaluate lock clean

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and exactly pinned: the CPU wheel (a looser pin would pull a CUDA build)
	$(BIN)/pip install -q -c constraints.txt torch
	$(BIN)/pip install -q -c constraints.txt -e '.[train,corpora,ray,dev]'
	touch $(STAMP)

install: $(STAMP)

base-model: install
	$(BIN)/cxthemes base-model --if-missing

model: base-model
	$(BIN)/cxthemes train --if-missing
	$(BIN)/cxthemes export-onnx --if-missing

# Optional, after `make model` or `make run`: a 10-layer student of the current model (~37 min on
# 2 cores), current only if it ships (within 0.01 macro F1 and sentiment accuracy of its
# teacher); 1.1-1.4x the 12-layer model's texts/s in bf16 (bench/RESULTS.md). A second run
# does nothing.
student: model
	$(BIN)/cxthemes distill --if-missing --layers 10 --corpus-texts 6000 \
		--unlabelled labels/unlabelled/*.jsonl
	$(BIN)/cxthemes export-onnx --if-missing

run: model
	$(BIN)/cxthemes serve --host $(HOST) --port $(PORT)

# Test files are spread over up to 4 worker processes (one per core; a file stays on one worker
# so its module fixtures are built once). TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= auto

test: base-model
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Known vulnerabilities in the pinned dependencies (PyPI advisory database); fails on any found.
# AUDIT_FLAGS=--strict also fails when a package could not be checked (e.g. the advisory API is
# unreachable from a mirror-only network).
audit: install
	$(BIN)/pip-audit -r constraints.txt --no-deps --disable-pip --progress-spinner off $(AUDIT_FLAGS)

train: base-model
	$(BIN)/cxthemes train

evaluate: install
	$(BIN)/cxthemes evaluate

# Refresh constraints.txt from the current venv (review the diff before committing).
lock: install
	$(BIN)/pip freeze --exclude-editable | grep -v '^cxthemes' > constraints.txt

clean:
	rm -rf $(VENV) models/.checkpoints .pytest_cache
