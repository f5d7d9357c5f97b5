# JetMoE stack: corpus → phase 1 → phase 2 → export.  `make help` lists the targets.
# Defaults run the CPU demo on the embedded sample; override e.g. `make corpus CORPUS=jetmoe`,
# `make phase1 MODEL=jetmoe-8b NPROC=8` (torchrun on one node). Nothing here needs an activated venv:
# every command runs through .venv/bin (python, torchrun, jetmoe).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CORPUS ?= sample
MODEL ?= tiny
RUN_DIR ?= runs/$(MODEL)
# the run's name: the last part of RUN_DIR (runs/probe → probe); exports and reports are named after it
RUN_NAME = $(notdir $(patsubst %/,%,$(RUN_DIR)))
# NPROC=N: N ranks on this machine through torchrun (the venv's, so no activation is needed)
NPROC ?=
TORCHRUN ?= $(VENV)/bin/torchrun
LAUNCH ?= $(if $(NPROC),$(TORCHRUN) --standalone --nproc-per-node $(NPROC),$(PY))
ARGS ?=
SOURCE ?=
EXPORT_DIR ?= exports/$(RUN_NAME)
CORPUS_DIR ?= shards/$(CORPUS)
REPORT_DIR ?= reports/$(RUN_NAME)
MIXTURE ?= mixtures/phase1.toml
TOKENS ?= 1e6
# The run config file. A run that has started keeps its config in $(RUN_DIR)/run_config.toml, so the file is
# passed only for a new run, or when MODEL= is given (the trainer then checks it against the saved config).
RUN_CONFIG = $(if $(and $(wildcard $(RUN_DIR)/run_config.toml),$(filter file,$(origin MODEL))),,trainer/configs/$(MODEL).toml)
# report: the run's own corpus (from its saved config) unless CORPUS= or CORPUS_DIR= is given
REPORT_CORPUS = $(if $(filter-out file,$(origin CORPUS) $(origin CORPUS_DIR)),--corpus $(CORPUS_DIR))
# alignment: SFT from RUN_DIR's phase 2, DPO from SFT_DIR; demo-chat exports the DPO model to CHAT_EXPORT_DIR
SFT_DIR ?= $(RUN_DIR)-sft
DPO_DIR ?= $(RUN_DIR)-dpo
CHAT_EXPORT_DIR ?= exports/$(RUN_NAME)-chat
# demo-chat trains SFT for half an epoch (the config's 3 take ~40 steps), DPO its one epoch
DEMO_CHAT_SFT_ARGS ?= --train.epochs=0.5

ABLATION ?= cpu
ABLATION_ARGS ?=

.PHONY: help setup corpus status verify inspect plan phase1 phase2 sft dpo export demo demo-chat test bench report ablation clean

help:
	@echo "usage: make <target> [VARIABLE=value ...]   e.g. make corpus CORPUS=jetmoe ARGS=--executor.workers=8"
	@grep -E '^[a-z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'
	@echo "variables: CORPUS=$(CORPUS) (pipeline/configs/<CORPUS>.toml, shards/<CORPUS>)  MODEL=$(MODEL)  RUN_DIR=$(RUN_DIR)"
	@echo "           SOURCE=<source> (inspect)  ARGS=<more arguments: --section.key=value overrides>  NPROC=<ranks, through the venv's torchrun>"

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

plan: setup ## what MIXTURE draws from shards/$(CORPUS) for TOKENS tokens: shares, tokens, epochs
	$(PY) -m trainer plan $(MIXTURE) --corpus $(CORPUS_DIR) --tokens $(TOKENS) $(ARGS)

phase1: setup ## train phase 1 (warmup + stable) of trainer/configs/$(MODEL).toml into RUN_DIR (NPROC=N: torchrun)
	$(LAUNCH) -m trainer train $(RUN_CONFIG) --phase 1 --run-dir $(RUN_DIR) $(ARGS)

phase2: setup ## train phase 2 (decay, phase-2 mixture) of RUN_DIR, from its saved config and last checkpoint
	$(LAUNCH) -m trainer train $(RUN_CONFIG) --phase 2 --run-dir $(RUN_DIR) $(ARGS)

sft: setup ## phase 3a: SFT of RUN_DIR's final (phase 2) checkpoint by trainer/configs/align/sft-$(MODEL).toml
	$(LAUNCH) -m trainer sft trainer/configs/align/sft-$(MODEL).toml --run-dir $(SFT_DIR) --init.checkpoint=$(RUN_DIR) $(ARGS)

dpo: setup ## phase 3b: DPO of SFT_DIR's final checkpoint by trainer/configs/align/dpo-$(MODEL).toml
	$(LAUNCH) -m trainer dpo trainer/configs/align/dpo-$(MODEL).toml --run-dir $(DPO_DIR) --init.checkpoint=$(SFT_DIR) $(ARGS)

export: setup ## write exports/<run name> (Hugging Face JetMoeForCausalLM) from RUN_DIR's last checkpoint; FORCE=1 replaces one
	$(PY) -m trainer export $(RUN_DIR) $(EXPORT_DIR) $(if $(FORCE),--force)

report: setup ## plots and one HTML page of RUN_DIR and its corpus: open reports/<run name>/index.html
	$(PY) -m trainer report --run $(RUN_DIR) $(REPORT_CORPUS) --out $(REPORT_DIR)

ablation: setup ## build shards/ablation (the sample + the standard library's text), train trainer/configs/ablations/$(ABLATION).toml (variants × seeds) into runs/ablation/; ABLATION_ARGS=--quick or overrides
	$(PY) -m pipeline.localtext --out data/local
	$(PY) -m pipeline build pipeline/configs/ablation.toml
	$(PY) -m trainer ablation trainer/configs/ablations/$(ABLATION).toml $(ABLATION_ARGS)

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
