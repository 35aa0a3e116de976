# make demo: set up .venv, train the quickstart model, print held-out bpc and a sample.
# make test: set up .venv, run the whole test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_DIR ?= runs/quickstart

.PHONY: demo test bench bench-data experiments clean

$(STAMP): requirements.txt setup.py
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 9) <= v <= (3, 11) else "mtfzoo needs Python 3.9-3.11 (TensorFlow 2.15 has no wheels for %d.%d): run make PYTHON=python3.11" % v)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mtfzoo train --gin_file gin/quickstart.gin --model_dir $(RUN_DIR)
	$(BIN)/mtfzoo eval --model_dir $(RUN_DIR)
	$(BIN)/mtfzoo sample --model_dir $(RUN_DIR) --prompt "ROMEO:" --length 200 --temperature 0.8 --seed 0

# The seed thread's main comparisons at CPU scale (about 15 minutes), then their plots.
EXPERIMENTS ?= transformer mixer gmlp mixer_sm3
experiments: $(STAMP)
	for e in $(EXPERIMENTS); do \
	  $(BIN)/mtfzoo train --gin_file gin/experiments/$$e.gin --model_dir runs/experiments/$$e || exit 1; \
	done
	$(BIN)/mtfzoo compare $(addprefix runs/experiments/,$(EXPERIMENTS)) --out report

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

# Preparation MB/s and peak RSS on generated 0.5 and 2 GB corpora (1 and 2 workers),
# and input pipeline windows/s against the Transformer's training speed: one JSON line.
bench-data: $(STAMP)
	mkdir -p bench
	$(BIN)/mtfzoo bench --prepare --gin_file gin/models/transformer.gin | tee bench/data.json

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs report bench *.egg-info
