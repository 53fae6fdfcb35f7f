# bnstudy: `make help` lists the targets. Variables: SCALE=quick|paper, ARGS="extra overrides",
# SEEDS=N (sweep seeds 0..N-1: figures show mean and band), PY (the venv's python).
SHELL := /bin/bash
VENV ?= .venv
PY ?= $(VENV)/bin/python
SCALE ?= quick
SEEDS ?= 1
ARGS ?=
RESULTS ?= results
LOCK ?= requirements.lock
REFERENCE ?= results/reference/$(SCALE)
seed_list = $(shell seq -s, 0 $$(( $(SEEDS) - 1 )))
# The DLN is the paper's at both scales, except that quick runs 4,000 of its 10,000 steps (make all
# then fits in about 12 minutes on 2 cores; see README, Performance).
dln_quick = train.steps=4000 train.measure_every=100
dln_paper =
# DLN runs are single-threaded (train.threads=1): two at a time fill 2 cores and give byte-identical
# CSVs. Set DLN_LAUNCHER= to run them one by one; a launcher in ARGS comes later and wins.
DLN_LAUNCHER ?= hydra/launcher=parallel
# paper-scale browser figures use MNIST, as seed 001 does
browser_data_paper = data=mnist
browser_data_quick =
train = $(PY) -m experiments.train -m experiment=$(1) $(2) seed=$(seed_list) progress=false $(ARGS)
cnn = $(call train,$(1),scale=$(SCALE))
figures = $(PY) -m experiments.figures $(1) --scale $(SCALE) --results $(RESULTS)

.PHONY: help install lock test quick fig1 fig2 fig3 fig4 fig5 browser all figures report verify reference bench clean-results tutorials

help:  ## list the targets
	@grep -hE '^[a-z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

install:  ## create .venv, install bnstudy (editable, dev extras) from requirements.lock, and the offline Fashion-MNIST
	LOCK="$(LOCK)" bash scripts/install.sh

lock:  ## regenerate requirements.lock (pinned, hashed; CPython 3.11, Linux x86_64) from pyproject.toml
	LOCK_ARGS="$(LOCK_ARGS)" bash scripts/lock.sh

test:  ## run the test suite (unit tests, tiny end-to-end runs, notebooks)
	$(PY) -m pytest

quick:  ## the main job: small CNN +/- BN at lr 0.1/0.5 on Fashion-MNIST, then its figure
	$(PY) -m experiments.train -m experiment=quick progress=false $(ARGS)
	$(PY) -m experiments.figures quick --scale quick --results $(RESULTS)

fig1:  ## standard vs BN at lr 0.1/0.5: accuracy, activation histograms
	$(call cnn,fig1)
	$(call figures,fig1)

fig2:  ## standard vs BN vs noisy BN (and noise alone): accuracy, histograms, moment shifts
	$(call cnn,fig2)
	$(call figures,fig2)

fig3:  ## gradient ICS: CNN at lr 0.1/0.01, DLN at 1e-6/1e-7
	$(call cnn,fig3_cnn)
	$(call train,fig3_dln,scale=$(SCALE) $(dln_$(SCALE)) $(DLN_LAUNCHER))
	$(call figures,fig3)

fig4:  ## loss landscape, gradient predictiveness, effective beta: CNN and DLN
	$(call cnn,fig4_cnn)
	$(call train,fig4_dln,scale=$(SCALE) $(dln_$(SCALE)) $(DLN_LAUNCHER))
	$(call figures,fig4)

fig5:  ## l1/l2/linf normalisations vs standard and BN: CNN and DLN
	$(call cnn,fig5_cnn)
	$(call train,fig5_dln,scale=$(SCALE) $(dln_$(SCALE)) $(DLN_LAUNCHER))
	$(call figures,fig5)

browser:  ## seed 001's three figures (small CNN; MNIST at paper scale)
	$(call train,browser,scale=$(SCALE) $(browser_data_$(SCALE)))
	$(call figures,browser)

all: fig1 fig2 fig3 fig4 fig5 browser  ## every experiment and figure at SCALE

# The tutorials' claims (README, "What the tutorials say"): always quick scale, single-threaded jobs two
# at a time; not part of `make all`. `make report` adds their section when their runs exist.
tut = $(PY) -m experiments.train -m experiment=$(1) seed=$(seed_list) progress=false hydra/launcher=parallel $(ARGS)
tutorials:  ## the tutorials' claims at quick scale (~6 min on 2 idle cores, one seed; not in all): runs, CSVs, figure
	$(call tut,tut_batch)
	$(call tut,tut_lr)
	$(call tut,tut_init)
	$(call tut,tut_reg)
	$(call tut,tut_momentum)
	$(call tut,tut_placement)
	$(PY) -m experiments.tutorials gradients --results $(RESULTS) --seeds $(shell seq 0 $$(( $(SEEDS) - 1 )))
	$(PY) -m experiments.tutorials memory --results $(RESULTS)
	$(PY) -m experiments.figures tutorials --scale quick --results $(RESULTS)

figures:  ## redraw every figure from the CSVs (no training)
	$(call figures,)

report:  ## results/REPORT.md: every figure and the paper's claims checked on the CSVs
	$(PY) -m experiments.report --results $(RESULTS) --scale $(SCALE)

verify:  ## compare your latest runs at SCALE with the committed reference, metric by metric (README: Provenance)
	$(PY) -m experiments.verify --results $(RESULTS) --scale $(SCALE) --reference $(REFERENCE)

reference:  ## write REFERENCE (results/reference/SCALE) from the latest runs, then redraw its figures and report
	$(PY) -m experiments.reference --results $(RESULTS) --scale $(SCALE) --out $(REFERENCE)

bench:  ## suite vs bare PyTorch loop, data path, measurement costs, FLOP/s (ARGS=--full for longer)
	$(PY) -m experiments.bench $(ARGS)

clean-results:  ## delete results/ run folders (asks first)
	$(PY) -m experiments.clean_results --results $(RESULTS)
