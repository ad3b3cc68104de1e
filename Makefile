# Two entry points, both of which set everything up first:
#   make tutorials   open the tutorial notebooks in JupyterLab (jobs in ./digits-jobs)
#   make test        run the whole test suite (Python, TypeScript, browser tests)
PY ?= python3
VENV := .venv
LAB_ARGS ?=   # extra JupyterLab options, e.g. LAB_ARGS=--ServerApp.port=9999
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup tutorials test bench clean

$(STAMP): pyproject.toml package.json package-lock.json
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -e '.[test]'
	npm ci --no-audit --no-fund
	npm run build
	touch $(STAMP)

setup: $(STAMP)

tutorials: $(STAMP)
	DIGITS_JOBS_DIR=$${DIGITS_JOBS_DIR:-$(CURDIR)/digits-jobs} $(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.allow_root=True \
		--ServerApp.root_dir=$(CURDIR) $(LAB_ARGS) notebooks/

test: $(STAMP)
	npm run typecheck
	npm test
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not browser"
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/browser

bench: $(STAMP)
	$(BIN)/python bench/bench_data.py
	$(BIN)/python bench/bench_train.py

clean:
	rm -rf $(VENV) node_modules digits_widgets/static build
