# make demo: set up .venv, train the quickstart model, print held-out bpc and a sample.
# make test: set up .venv, run the whole test suite.
# The venv's interpreter: PYTHON if given (make PYTHON=/path/to/python3.11), else the
# first of python3.11, python3.10, python3.9, python3 on PATH that is Python 3.9-3.11
# (TensorFlow 2.15 has wheels for no other), else uv's Python 3.11 if uv is installed.
PYTHON ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_DIR ?= runs/quickstart
SUPPORTED_PYTHON := import sys; sys.exit(not (3, 9) <= sys.version_info[:2] <= (3, 11))
NEEDS_PYTHON := mtfzoo needs Python 3.9-3.11 (TensorFlow 2.15 has no wheels for others)

.PHONY: demo test bench experiments sm3_sweep clean

$(STAMP): requirements.txt setup.py
	@if [ -n "$(PYTHON)" ]; then \
	  $(PYTHON) -c '$(SUPPORTED_PYTHON)' || { \
	    echo "$(NEEDS_PYTHON); PYTHON=$(PYTHON) is not one" >&2; exit 1; }; \
	  echo "$(PYTHON) -m venv $(VENV)"; $(PYTHON) -m venv $(VENV); \
	else \
	  found=; for p in python3.11 python3.10 python3.9 python3; do \
	    if $$p -c '$(SUPPORTED_PYTHON)' 2>/dev/null; then found=$$p; break; fi; \
	  done; \
	  if [ -n "$$found" ]; then \
	    echo "$$found -m venv $(VENV)"; $$found -m venv $(VENV); \
	  elif command -v uv >/dev/null 2>&1; then \
	    echo "uv venv --seed --python 3.11 $(VENV)"; uv venv --seed --python 3.11 $(VENV); \
	  else \
	    echo "$(NEEDS_PYTHON): none of python3.11, python3.10, python3.9, python3 on PATH is one, and uv is not installed; run make PYTHON=/path/to/python3.11" >&2; \
	    exit 1; \
	  fi; \
	fi
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mtfzoo train --gin_file gin/quickstart.gin --model_dir $(RUN_DIR)
	$(BIN)/mtfzoo eval --model_dir $(RUN_DIR)
	$(BIN)/mtfzoo sample --model_dir $(RUN_DIR) --prompt "ROMEO:" --length 200 --temperature 0.8 --seed 0

# The seed thread's main comparisons at CPU scale (about 15 minutes), then their plots.
EXPERIMENTS ?= transformer mixer gmlp mixer_sm3
REPORT ?= report
experiments: $(STAMP)
	for e in $(EXPERIMENTS); do \
	  $(BIN)/mtfzoo train --gin_file gin/experiments/$$e.gin --model_dir runs/experiments/$$e || exit 1; \
	done
	$(BIN)/mtfzoo compare $(addprefix runs/experiments/,$(EXPERIMENTS)) --out $(REPORT)

# SM3 vs Adam on the MLP-Mixer, with SM3's learning rate swept over 0.003, 0.01, 0.03.
SM3_SWEEP := mixer_adam mixer_sm3_lr0.003 mixer_sm3 mixer_sm3_lr0.03
sm3_sweep:
	$(MAKE) experiments EXPERIMENTS="$(SM3_SWEEP)" REPORT=report/sm3_sweep

# Speed and memory of every model in gin/models/, one JSON line each, and a table. The
# first model runs as its gin file says; the others get the d_model that gives them its
# parameter count.
BENCH_MODELS ?= transformer $(filter-out transformer,$(basename $(notdir $(wildcard gin/models/[!b]*.gin))))
bench: $(STAMP)
	mkdir -p bench
	rm -f bench/bench.jsonl
	match=""; for m in $(BENCH_MODELS); do \
	  $(BIN)/mtfzoo bench --gin_file gin/models/$$m.gin $$match > bench/last.json || exit 1; \
	  [ -n "$$match" ] || match="--match_params $$($(BIN)/python -c "import json; print(json.load(open('bench/last.json'))['params'])")"; \
	  sed "s/^{/{\"model\": \"$$m\", /" bench/last.json >> bench/bench.jsonl; \
	done
	$(BIN)/mtfzoo bench --gin_file gin/models/transformer.gin --gin_file gin/optimizers/sm3.gin > bench/last.json
	sed 's/^{/{"model": "transformer+sm3", /' bench/last.json >> bench/bench.jsonl
	$(BIN)/python -m reports.bench bench/bench.jsonl > bench/bench.md
	cat bench/bench.md

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs report bench *.egg-info
