# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck bench fuzz chaos chaos-short clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/poststelle run $(ARGS)

# The suite runs on TEST_JOBS workers (pytest-xdist; each starts its own nats-server on a free
# port), then the tests that measure throughput, load or time (marker `serial`) run on their own so
# the others' load does not skew them. Exit status 5 is pytest's "nothing selected".
TEST_JOBS ?= 4
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_JOBS) -m "not serial" $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m serial $(PYTEST_ARGS) || [ $$? -eq 5 ]

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy sees the installed layout through a link farm: poststelle/<folder> -> ../<folder>.
typecheck: $(STAMP)
	@mkdir -p .typecheck/poststelle
	@for d in adapters routing mappings contracts; do ln -sfn ../../$$d .typecheck/poststelle/$$d; done
	$(BIN)/mypy -p poststelle
	$(BIN)/mypy fuzz chaos bench

bench: $(STAMP)
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script; done

# Parser fuzzing (fuzz/README.md): FUZZ_ARGS="--inputs 1000 --targets xml-intake" for a short run.
fuzz: $(STAMP)
	$(BIN)/python -m fuzz $(FUZZ_ARGS)

# The fault suite (docs/chaos.md): real nats-server and hub processes under load, one fault per
# scenario, each ending with the conservation balance; exits non-zero when a case is lost.
chaos: $(STAMP)
	$(BIN)/python -m chaos $(CHAOS_ARGS)

chaos-short: $(STAMP)
	$(BIN)/python -m chaos --short $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) .typecheck .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
