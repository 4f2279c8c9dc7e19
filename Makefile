# Quick start: `make demo` runs the main job, `make test` runs the tests; both set up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test bench browser docs-img clean peers

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: setup
	$(BIN)/monosemantic demo --out demo

test: setup
	$(BIN)/python -m pytest

# Every benchmarks/*.py prints its ratio against a baseline measured in the same run.
bench: setup
	@for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# SAELens (the `bench` extra) in a venv of its own, with this package, where the tests and benchmarks look for it
# (`.peers/venv/bin/monosemantic real sae` then trains SAELens beside ours); torch and every
# shared dependency pinned by requirements.lock (so pip takes the CPU torch, not a CUDA build)
PEERS ?= .peers/venv
peers: $(PEERS)/.installed

$(PEERS)/.installed: requirements.lock
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install --quiet --disable-pip-version-check -c requirements.lock torch 'sae-lens>=6.54'
	$(PEERS)/bin/pip install --quiet --disable-pip-version-check -c requirements.lock -e .
	touch $@

# Debian's headless Chromium for tests/test_browser.py (which skips, saying why, without it)
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-headless-shell >/dev/null 2>&1 || \
	  (command -v apt-get >/dev/null 2>&1 && apt-get install -y --no-install-recommends chromium) || \
	  echo "no apt-get here: install Chromium with your system's package manager"

# README pictures: copies three PNGs of a demo's figures/ (DEMO=DIR, default demo: run `make demo` first)
DEMO ?= demo
docs-img:
	@test -d $(DEMO)/figures || { echo "no $(DEMO)/figures: run make demo first"; exit 1; }
	mkdir -p docs/img
	cp $(DEMO)/figures/00-toy-models-of-superposition-3.png docs/img/toy-norms.png
	cp $(DEMO)/figures/01-superposition-as-a-phase-1.png docs/img/phase-n2m1.png
	cp $(DEMO)/figures/03-dictionary-learning-against-known-1.png docs/img/dictionary-recovery.png

clean:
	rm -rf $(VENV) demo .pytest_cache
