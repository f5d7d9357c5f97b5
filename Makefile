# JetMoE stack: corpus → phase 1 → phase 2 → export.  `make help` lists the targets.
# Defaults run the CPU demo on the embedded sample; override e.g. `make corpus CORPUS=jetmoe`,
# `make phase1 MODEL=jetmoe-8b LAUNCH="torchrun --nproc-per-node 8"`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CORPUS ?= sample
MODEL ?= tiny
RUN_DIR ?= runs/$(MODEL)
LAUNCH ?= $(PY)
ARGS ?=
SOURCE ?=
EXPORT_DIR ?= exports/$(MODEL)
CORPUS_DIR ?= shards/$(CORPUS)
REPORT_DIR ?= reports/$(MODEL)
SFT_DIR ?= $(RUN_DIR)-sft
DPO_DIR ?= $(RUN_DIR)-dpo
CHAT_EXPORT_DIR ?= exports/$(MODEL)-chat
# demo-chat trains SFT for half an epoch (the config's 3 take ~40 steps), DPO its one epoch
DEMO_CHAT_SFT_ARGS ?= --train.epochs=0.5

.PHONY: help setup corpus status verify inspect phase1 phase2 sft dpo export demo demo-chat test bench report clean

help:
	@echo "usage: make <target> [VARIABLE=value ...]   e.g. make corpus CORPUS=jetmoe ARGS=--executor.workers=8"
	@grep -E '^[a-z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'
	@echo "variables: CORPUS=$(CORPUS) (pipeline/configs/<CORPUS>.toml, shards/<CORPUS>)  MODEL=$(MODEL)  RUN_DIR=$(RUN_DIR)"
	@echo "           SOURCE=<source> (inspect)  ARGS=<more arguments: --section.key=value overrides>  LAUNCH=<torchrun ...>"

$(VENV)/.installed: pyproject.toml scripts/setup_venv.sh
	@bash scripts/setup_venv.sh
	@touch $@

setup: $(VENV)/.installed ## create .venv and install the project (CPU torch unless a CUDA torch is present)

corpus: setup ## build shards/$(CORPUS) from pipeline/configs/$(CORPUS).toml (default: the embedded sample, offline); ARGS=overrides
	$(PY) -m pipeline build pipeline/configs/$(CORPUS).toml $(ARGS)

status: setup ## one row per unit of the build of pipeline/configs/$(CORPUS).toml: state, tasks, docs, files, bytes
	$(PY) -m pipeline status pipeline/configs/$(CORPUS).toml $(ARGS)

verify: setup ## check shards/$(CORPUS) against the shard contract
	$(PY) -m pipeline verify shards/$(CORPUS)

inspect: setup ## counts and token statistics per source of shards/$(CORPUS); SOURCE=<name> adds decoded documents
	$(PY) -m pipeline inspect shards/$(CORPUS) $(SOURCE)

phase1: setup ## train phase 1 (warmup + stable) of trainer/configs/$(MODEL).toml
	$(LAUNCH) -m trainer train trainer/configs/$(MODEL).toml --phase 1 --run-dir $(RUN_DIR) $(ARGS)

phase2: setup ## train phase 2 (decay, phase-2 mixture) from phase 1's last checkpoint
	$(LAUNCH) -m trainer train trainer/configs/$(MODEL).toml --phase 2 --run-dir $(RUN_DIR) $(ARGS)

sft: setup ## phase 3a: SFT of $(RUN_DIR)'s final (phase 2) checkpoint by trainer/configs/align/sft-$(MODEL).toml
	$(LAUNCH) -m trainer sft trainer/configs/align/sft-$(MODEL).toml --run-dir $(SFT_DIR) --init.checkpoint=$(RUN_DIR) $(ARGS)

dpo: setup ## phase 3b: DPO of $(SFT_DIR)'s final checkpoint by trainer/configs/align/dpo-$(MODEL).toml
	$(LAUNCH) -m trainer dpo trainer/configs/align/dpo-$(MODEL).toml --run-dir $(DPO_DIR) --init.checkpoint=$(SFT_DIR) $(ARGS)

export: setup ## write a Hugging Face JetMoeForCausalLM folder from the run's last checkpoint
	$(PY) -m trainer export $(RUN_DIR) $(EXPORT_DIR)

report: setup ## plots and one HTML page of the run and its corpus: open reports/$(MODEL)/index.html
	$(PY) -m trainer report --run $(RUN_DIR) --corpus $(CORPUS_DIR) --out $(REPORT_DIR)

demo: setup ## the whole demo on the embedded sample: corpus, phase 1, phase 2, export
	$(MAKE) corpus
	$(MAKE) phase1
	$(MAKE) phase2
	$(MAKE) export

demo-chat: setup ## after `make demo`: the chat corpus, a short SFT then DPO of runs/tiny, export with the chat template
	$(MAKE) corpus CORPUS=chat_sample
	$(MAKE) sft ARGS="$(DEMO_CHAT_SFT_ARGS) $(ARGS)"
	$(MAKE) dpo
	$(MAKE) export RUN_DIR=$(DPO_DIR) EXPORT_DIR=$(CHAT_EXPORT_DIR)

test: setup ## run the test suite (CPU; GPU tests skip without CUDA)
	$(PY) -m pytest -q

bench: setup ## run the benchmarks in bench/ (each prints one JSON line of figures at the end)
	@set -e; for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b; done

clean: ## remove build outputs (keeps .venv)
	rm -rf work shards/sample shards/chat_sample runs reports exports
