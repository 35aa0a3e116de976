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

.PHONY: demo test bench bench-depth bench-length bench-data experiments sm3_sweep recall claims claims-figures clean

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
# Any gin/experiments file reruns the same way, e.g. one record of docs/runs/ with
#   make experiments EXPERIMENTS=long/mixer SEED=1
EXPERIMENTS ?= transformer mixer gmlp mixer_sm3
REPORT ?= report
SEED ?=
experiments: $(STAMP)
	for e in $(EXPERIMENTS); do \
	  $(BIN)/mtfzoo train --gin_file gin/experiments/$$e.gin --model_dir runs/experiments/$$e$(if $(SEED),/seed$(SEED)) \
	    $(if $(SEED),--gin_param run.seed=$(SEED)) || exit 1; \
	done
	$(BIN)/mtfzoo compare $(foreach e,$(EXPERIMENTS),runs/experiments/$(e)$(if $(SEED),/seed$(SEED))) --out $(REPORT)

# SM3 vs Adam on the MLP-Mixer, with SM3's learning rate swept over 0.003, 0.01, 0.03.
SM3_SWEEP := mixer_adam mixer_sm3_lr0.003 mixer_sm3 mixer_sm3_lr0.03
sm3_sweep:
	$(MAKE) experiments EXPERIMENTS="$(SM3_SWEEP)" REPORT=report/sm3_sweep

# The thread's claims in the longer regime (gin/experiments/long/): every experiment of
# CLAIMS for every seed of SEEDS trains in CLAIMS_RUNS/E/seed<k>, and only its records
# (no checkpoints) are copied to CLAIMS_OUT/E/seed<k>/, with its CPU time appended to
# cpu_time.jsonl there; a record already there is kept, so a batch can be resumed or
# spread over sittings. The compressor and n-gram baselines of the corpus are computed
# once into CLAIMS_OUT/baselines.jsonl, then compare draws everything into
# CLAIMS_REPORT. About 30 minutes per run on 2 cores. A quick check of the target:
#   make claims CLAIMS=transformer SEEDS=0 CLAIMS_PARAMS="run.train_steps=20 run.eval_every=10" \
#     CLAIMS_RUNS=/tmp/c/runs CLAIMS_OUT=/tmp/c/docs CLAIMS_REPORT=/tmp/c/report
# The batches of gin/experiments/long/, in the order they are run (pass one as CLAIMS):
#   the main comparison (3 seeds), the newer families' table (3 seeds), the single-seed
#   claims, and the stability pushes (push/: 1500 steps at 10x and 30x the lr, unclipped).
CLAIMS_MAIN = transformer shared_attention mixer mixer_heads gmlp gmlp_tanh transformer_sm3
CLAIMS_NEW = linear_attention retention hyena local_attention transformer_rotary \
  transformer_alibi
CLAIMS_MORE = transformer_deep mixer_deep transformer_rezero mixer_rezero adam_beta2_0.95 \
  clip_0.3 clip_1 agc_0.003 transformer_sm3_lr0.003 transformer_sm3_lr0.03
CLAIMS_PUSH = $(foreach m,transformer mixer gmlp gmlp_tanh,push/$(m)_lr0.02 push/$(m)_lr0.06) \
  push/transformer_clip0.3_lr0.02 push/transformer_sm3_lr0.1 push/transformer_sm3_lr0.3 \
  $(foreach m,transformer_rezero mixer_rezero,push/$(m)_lr0.02 push/$(m)_lr0.06) \
  push/transformer_agc0.003_lr0.02
CLAIMS ?= $(CLAIMS_MAIN)
SEEDS ?= 0 1 2
CLAIMS_PARAMS ?=
CLAIMS_RUNS ?= runs/claims
CLAIMS_OUT ?= docs/runs
CLAIMS_REPORT ?= report/claims
RECORDS := metrics.jsonl eval_metrics.jsonl run.json config.gin
claims: $(STAMP)
	mkdir -p $(CLAIMS_OUT)
	[ -s $(CLAIMS_OUT)/baselines.jsonl ] || { $(BIN)/mtfzoo baselines --gin_file gin/experiments/long/base.gin \
	  > $(CLAIMS_OUT)/baselines.jsonl.tmp && mv $(CLAIMS_OUT)/baselines.jsonl.tmp $(CLAIMS_OUT)/baselines.jsonl; }
	for e in $(CLAIMS); do for s in $(SEEDS); do \
	  out=$(CLAIMS_OUT)/$$e/seed$$s; run=$(CLAIMS_RUNS)/$$e/seed$$s; \
	  if [ -s $$out/eval_metrics.jsonl ]; then echo "$$out: kept"; continue; fi; \
	  mkdir -p $$out; \
	  /usr/bin/time -a -o $$out/cpu_time.jsonl -f '{"user_seconds": %U, "system_seconds": %S, "wall_seconds": %e}' \
	    $(BIN)/mtfzoo train --gin_file gin/experiments/long/$$e.gin --model_dir $$run \
	      --gin_param run.seed=$$s $(addprefix --gin_param ,$(CLAIMS_PARAMS)) || exit 1; \
	  for f in $(RECORDS); do cp $$run/$$f $$out/ || exit 1; done; \
	done; done
	$(BIN)/mtfzoo compare $(foreach e,$(CLAIMS),$(foreach s,$(SEEDS),$(CLAIMS_OUT)/$(e)/seed$(s))) \
	  --baselines $(CLAIMS_OUT)/baselines.jsonl --out $(CLAIMS_REPORT)

# One figure per claim of docs/claims.md: mtfzoo compare over every recorded seed (a run
# with eval_metrics.jsonl in CLAIMS_OUT) of the claim's experiments, with the baselines,
# into CLAIMS_FIGURES/<claim>/, once each of those experiments has a recorded run.
CLAIMS_FIGURES ?= docs/claims
CLAIM_GROUPS = shared_map=transformer,shared_attention \
  gmlp=transformer,gmlp,gmlp_tanh \
  gmlp_push=push/gmlp_lr0.02,push/gmlp_lr0.06,push/gmlp_tanh_lr0.02,push/gmlp_tanh_lr0.06 \
  mixer_push=push/transformer_lr0.02,push/transformer_lr0.06,push/transformer_clip0.3_lr0.02,push/mixer_lr0.02,push/mixer_lr0.06 \
  mixer_convergence=transformer,mixer \
  depth=transformer,mixer,transformer_deep,mixer_deep \
  mixer_heads=mixer,mixer_heads \
  rezero=transformer,mixer,transformer_rezero,mixer_rezero \
  rezero_push=push/transformer_lr0.02,push/transformer_lr0.06,push/transformer_rezero_lr0.02,push/transformer_rezero_lr0.06,push/mixer_lr0.02,push/mixer_lr0.06,push/mixer_rezero_lr0.02,push/mixer_rezero_lr0.06 \
  sm3=transformer,transformer_sm3 \
  sm3_lr=transformer_sm3_lr0.003,transformer_sm3,transformer_sm3_lr0.03 \
  sm3_push=push/transformer_lr0.02,push/transformer_lr0.06,push/transformer_sm3_lr0.1,push/transformer_sm3_lr0.3 \
  adam_beta2=transformer,adam_beta2_0.95 \
  clipping=transformer,clip_0.3,clip_1,agc_0.003 \
  clipping_push=push/transformer_lr0.02,push/transformer_clip0.3_lr0.02,push/transformer_agc0.003_lr0.02 \
  newer_families=transformer,$(subst $(space),$(comma),$(strip $(CLAIMS_NEW)))
comma := ,
space := $(subst ,, )
claims-figures: $(STAMP)
	for g in $(CLAIM_GROUPS); do \
	  runs=; missing=; for e in $$(echo $${g#*=} | tr , ' '); do found=; \
	    for d in $(CLAIMS_OUT)/$$e/seed*; do \
	      if [ -s $$d/eval_metrics.jsonl ]; then runs="$$runs $$d"; found=1; fi; done; \
	    [ -n "$$found" ] || missing="$$missing $$e"; done; \
	  if [ -n "$$missing" ]; then echo "$${g%%=*}: not yet recorded:$$missing"; continue; fi; \
	  $(BIN)/mtfzoo compare $$runs --baselines $(CLAIMS_OUT)/baselines.jsonl \
	    --out $(CLAIMS_FIGURES)/$${g%%=*} || exit 1; \
	done

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
	$(MAKE) bench-depth

# Activation memory and tokens/s of the Transformer at 4, 8, 16 and 32 blocks for each
# residual stream (standard, recompute, revnet, momentum), at a small width: one JSON
# line each in bench/depth.jsonl, then bench/depth.md and bench/depth.png.
BENCH_DEPTHS ?= 4,8,16,32
BENCH_DEPTH_PARAMS ?= GPT.d_model=64 Attention.heads=4 run.sequence_length=64 run.batch_size=8
bench-depth: $(STAMP)
	mkdir -p bench
	$(BIN)/mtfzoo bench --depths $(BENCH_DEPTHS) --gin_file gin/models/transformer.gin \
	  $(addprefix --gin_param ,$(BENCH_DEPTH_PARAMS)) > bench/depth.jsonl
	$(BIN)/python -m reports.bench_depth bench/depth.jsonl bench

# Tokens/s and activation bytes of every BENCH_MODELS model at each context of
# BENCH_LENGTHS, with batch BENCH_TOKENS / context (the same tokens per step), then
# bench/length.md and bench/length.png. Each model keeps one d_model at every context:
# the one --match_params gives it against the Transformer at the first context, as in
# make bench. Each point runs in a process of its own (its own peak RSS) and times
# BENCH_LENGTH_STEPS steps after BENCH_LENGTH_WARMUP (a long context is slow on CPU);
# the sampler is not timed here (make bench does that).
BENCH_LENGTHS ?= 128 512 2048
BENCH_TOKENS ?= 4096
BENCH_LENGTH_WARMUP ?= 2
BENCH_LENGTH_STEPS ?= 3
bench-length: $(STAMP)
	mkdir -p bench
	rm -f bench/length.jsonl
	match=""; for m in $(BENCH_MODELS); do size="$$match"; for n in $(BENCH_LENGTHS); do \
	  $(BIN)/mtfzoo bench --gin_file gin/models/$$m.gin --gin_param run.sequence_length=$$n \
	    --gin_param run.batch_size=$$(( $(BENCH_TOKENS) / n )) $$size --nosampling_speeds \
	    --bench_warmup $(BENCH_LENGTH_WARMUP) --bench_steps $(BENCH_LENGTH_STEPS) > bench/last.json || exit 1; \
	  [ -n "$$match" ] || match="--match_params $$($(BIN)/python -c "import json; print(json.load(open('bench/last.json'))['params'])")"; \
	  size="--gin_param GPT.d_model=$$($(BIN)/python -c "import json; print(json.load(open('bench/last.json'))['d_model'])")"; \
	  sed "s/^{/{\"model\": \"$$m\", /" bench/last.json >> bench/length.jsonl; \
	done; done
	$(BIN)/python -m reports.bench_length bench/length.jsonl bench
	cat bench/length.md

# Synthetic recall: every gin/models file on mqar at each d_model (2 blocks, context
# 128; gin/experiments/recall.gin), one JSON line each in RECALL_OUT/runs/M-dD.json (every
# model at one width before the next, so a stopped batch leaves whole widths), then
# RECALL_OUT/recall.jsonl and report/recall.png and report/recall.md. A run already
# recorded is kept, so the batch resumes where it stopped (delete RECALL_OUT/runs to
# start over). RECALL_PARAMS adds flags; a quick check of the target:
#   make recall RECALL_MODELS=transformer RECALL_PARAMS="--gin_param run.train_steps=20" \
#     RECALL_OUT=/tmp/recall
RECALL_MODELS ?= $(basename $(notdir $(wildcard gin/models/[!b]*.gin)))
RECALL_D_MODELS ?= 64 128 256
RECALL_PARAMS ?=
RECALL_OUT ?= recall
RECALL_RUNS = $(foreach m,$(RECALL_MODELS),$(foreach d,$(RECALL_D_MODELS),$(RECALL_OUT)/runs/$(m)-d$(d).json))
recall: $(STAMP)
	mkdir -p $(RECALL_OUT)/runs
	for d in $(RECALL_D_MODELS); do for m in $(RECALL_MODELS); do \
	  out=$(RECALL_OUT)/runs/$$m-d$$d.json; \
	  if [ -s $$out ]; then echo "$$out: kept"; continue; fi; \
	  $(BIN)/mtfzoo synthetic --task mqar --gin_file gin/models/$$m.gin \
	    --gin_file gin/experiments/recall.gin --gin_param GPT.d_model=$$d \
	    $(RECALL_PARAMS) > $$out.tmp && mv $$out.tmp $$out || exit 1; \
	done; done
	cat $(RECALL_RUNS) > $(RECALL_OUT)/recall.jsonl
	$(BIN)/python -m reports.recall $(RECALL_OUT)/recall.jsonl report
	cat report/recall.md

# Preparation MB/s and peak RSS on generated 0.5 and 2 GB corpora (1 and 2 workers),
# and input pipeline windows/s against the Transformer's training speed: one JSON line.
bench-data: $(STAMP)
	mkdir -p bench
	$(BIN)/mtfzoo bench --prepare --gin_file gin/models/transformer.gin | tee bench/data.json

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile

clean:
	rm -rf $(VENV) runs report bench recall *.egg-info
