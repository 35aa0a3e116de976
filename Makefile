# make demo: set up .venv, train the quickstart model, print held-out bpc and a sample.
# make test: set up .venv, run the whole test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_DIR ?= runs/quickstart

.PHONY: demo test bench experiments clean

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

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs report bench *.egg-info
