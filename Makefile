# Two entry points on a fresh machine: `make repro` (the whole pipeline on the
# default synthetic data) and `make test`. Both create .venv and install first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install repro test test-fast test-slurm lint clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The DVC graph run by Snakemake, CORES one-thread stages at a time (run.threads), then recorded
# in dvc.lock and the DVC cache; `--touch` gives Snakemake back the mtimes `dvc commit` rewrites.
# The stages `dvc status` finds changed are forced (workflow/scripts/stale_outputs.py): Snakemake
# has no record of the parameters of outputs `dvc repro` made. Plain `dvc repro` gives the same
# bytes, one stage at a time (docs/running.md).
CORES ?= 2
repro: $(STAMP)
	export PATH="$(CURDIR)/$(BIN):$$PATH"; stale=$$(python workflow/scripts/stale_outputs.py) && \
	  snakemake --profile workflow/profiles/default --cores $(CORES) $${stale:+--forcerun $$stale}
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc commit -f
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --profile workflow/profiles/default --touch --quiet all

# The real-Slurm tests take minutes of job start-up and polling: `make test` stays
# under 10 minutes without them (--skip-slurm: reported as skipped, listed by -rs with
# the reason), `make test-slurm` runs them. Two pytest workers (-n 2) keep both cores busy;
# every test holds under that load (bench/README, "CPUs the test suite has passed on").
# --dist loadgroup: the tests sharing a fixture that builds seconds of work run on one worker,
# so it is built once (tests/conftest.py, SHARED_BUILDS).
test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -rs -n 2 --dist loadgroup --durations=15 --skip-slurm tests

test-slurm: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -rs -m slurm tests

test-fast: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -rs -m "not slow and not slurm" tests

lint: $(STAMP)
	$(BIN)/ruff check src tests bench workflow/scripts
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --lint

clean:
	rm -rf $(VENV) .snakemake .pytest_cache
