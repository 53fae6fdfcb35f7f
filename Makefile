# bnstudy: `make help` lists the targets and the variables.
SHELL := /bin/bash
VENV ?= .venv
PY ?= $(VENV)/bin/python
SCALE ?= quick
SEEDS ?= 1
ARGS ?=
RESULTS ?= results
LOCK ?= requirements.lock
REFERENCE ?= results/reference/$(SCALE)
SWEEP ?=
RUN_ID := $(shell date +%Y-%m-%d_%H-%M-%S)_make$(shell echo $$PPID)
# Single-thread runs (train.threads=1: the DLN always, every run at quick and tiny scale) go two at a time:
# they fill 2 cores and give byte-identical CSVs. Set LAUNCHER= to run them one by one; a launcher in ARGS
# comes later and wins. Paper-scale CNN runs use every core (train.threads=0), one at a time.
# LAUNCHER=slurm submits every run of a target to SLURM instead, one array job per experiment (docs/sweeps.md).
LAUNCHER ?= hydra/launcher=parallel
VARIABLES = SCALE SEEDS ARGS RESULTS SWEEP RUN_ID LAUNCHER REFERENCE LOCK PY
SCALE_doc = quick, paper or tiny: conf/scale/SCALE.yaml plus conf/experiment_scale/EXPERIMENT_SCALE.yaml
SEEDS_doc = sweep seeds 0..SEEDS-1 (figures then show a mean and a min-max band)
ARGS_doc = Hydra overrides added to every training command of the target (a figure target: both of its \
experiments). A key the experiment sweeps (optim.lr=0.3, norm=batch) replaces the values the sweep gives that key
RESULTS_doc = the folder of the runs, figures and REPORT.md
SWEEP_doc = sweep folders that make figures and make report read instead of the default of each experiment \
(python -m bnstudy.runs --help: the rule)
RUN_ID_doc = the name of the sweep folders this make writes (default: the time and the pid of make); an existing \
one resumes those sweeps
LAUNCHER_doc = the launcher of single-thread runs: the DLN always, every run below paper scale (empty: one job at a \
time); slurm (or hydra/launcher=slurm): every run of the target as a SLURM job (docs/sweeps.md)
REFERENCE_doc = the reference folder make verify compares with and make reference writes
LOCK_doc = the pinned, hashed requirements make install installs from
PY_doc = the python that runs everything
seed_list = $(shell seq -s, 0 $$(( $(SEEDS) - 1 )))
# a shell word: the text as it is, or in single quotes where it holds a space, a quote or a wildcard
sq = '$(subst ','\'',$(1))'
shell_word = $(if $(or $(word 2,$(1)),$(findstring ',$(1)),$(findstring ",$(1)),$(findstring *,$(1)),$(findstring \
	?,$(1)),$(findstring ;,$(1)),$(findstring &,$(1)),$(findstring |,$(1)),$(findstring <,$(1)),$(findstring \
	>,$(1)),$(findstring \,$(1)),$(findstring `,$(1))),$(call sq,$(1)),$(1))
# The command that resumes what this make started (printed once on Ctrl-C or SIGTERM, and when a job fails:
# experiments/interrupt.py): the goals typed, the variables set on the command line or in the environment,
# and this make's RUN_ID. RESUME_GOALS: a sub-make's goals are its parent's.
RESUME_GOALS ?= $(MAKECMDGOALS)
resume_vars = $(foreach v,$(filter-out RUN_ID,$(VARIABLES)),$(if $(filter command environment,$(firstword \
	$(origin $(v)))),$(v)=$(call shell_word,$($(v)))))
resume = BNSTUDY_RESUME=$(call sq,$(strip make $(RESUME_GOALS) RUN_ID=$(RUN_ID) $(resume_vars)))
# LAUNCHER as Hydra's override: hydra/launcher=NAME as given, or a bare NAME (slurm, parallel, submitit)
launcher = $(if $(findstring =,$(LAUNCHER)),$(LAUNCHER),$(if $(strip $(LAUNCHER)),hydra/launcher=$(strip $(LAUNCHER))))
on_slurm = $(filter hydra/launcher=slurm,$(launcher))
# a single-thread run's SLURM job asks for one CPU and no GPU (conf/hydra/launcher/slurm.yaml's defaults,
# 1 GPU, 4 CPUs, 32 GB, are a paper-scale CNN run's); a hydra.launcher.* in ARGS comes later and wins
slurm_cpu_job = hydra.launcher.gpus_per_node=0 hydra.launcher.cpus_per_task=1 hydra.launcher.mem_gb=4
# LAUNCHER, unless ARGS sets train.threads (two multi-thread runs side by side would share the cores badly;
# SLURM gives each job its own)
single_launcher = $(if $(on_slurm),$(launcher) $(slurm_cpu_job),$(if $(findstring train.threads,$(ARGS)),,$(launcher)))
# the CNN experiments' launcher: below paper scale their runs are single-threaded too; at paper scale one
# run at a time here, or SLURM's GPU jobs
cnn_launcher = $(if $(filter paper,$(SCALE)),$(if $(on_slurm),$(launcher)),$(single_launcher))
sweep_dir = $(RESULTS)/$(1)/$(SCALE)/$(RUN_ID)
# one experiment's sweep: scale-specific settings come from conf/ (experiment_scale), never from here
train = $(resume) $(PY) -m experiments.train -m experiment=$(1) scale=$(SCALE) seed=$(seed_list) \
	hydra.sweep.dir=$(call sweep_dir,$(1)) $(2) $(ARGS)
# draw a figure from the sweeps this make just wrote
figure = $(PY) -m experiments.figures $(1) --scale $(SCALE) --results $(RESULTS) --sweep $(foreach e,$(2),$(call sweep_dir,$(e)))
sweep_opt = $(if $(strip $(SWEEP)),--sweep $(SWEEP))

.PHONY: help install lock test test-cluster quick fig1 fig2 fig3 fig3_cnn fig3_dln fig4 fig4_cnn fig4_dln fig5 fig5_cnn \
	fig5_dln browser dln_sweep all curvature curvature_cnn curvature_dln theory signal \
	signal_cnn signal_dln beyond figures report verify reference bench notebook clean-results tutorials \
	modern resnet resnet_curvature resnet_signal vit vit_adam vit_warmup vit_curvature vit_signal

help:  ## list the targets and the variables
	@echo "Targets (make TARGET [VARIABLE=value ...]):"
	@grep -hE '^[a-z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'
	@echo "Variables:"
	@$(foreach v,$(VARIABLES),printf '  %-13s %s [now: %s]\n' '$(v)' '$($(v)_doc)' '$(or $($(v)),empty)';)

install:  ## create .venv, install bnstudy (editable, dev extras) from requirements.lock, and the offline Fashion-MNIST
	LOCK="$(LOCK)" bash scripts/install.sh

lock:  ## regenerate requirements.lock (pinned, hashed; CPython 3.11, Linux x86_64) from pyproject.toml
	LOCK_ARGS="$(LOCK_ARGS)" bash scripts/lock.sh

test:  ## run the test suite (unit tests, tiny end-to-end runs, notebooks)
	$(PY) -m pytest

# a cluster started here is stopped again; one that was up before is left up
test-cluster:  ## the SLURM path on a real one-node cluster on this machine (root; scripts/slurm-local.sh starts it)
	@up=$$(bash scripts/slurm-local.sh status | head -1); \
	bash scripts/slurm-local.sh start || exit 1; \
	$(PY) -m pytest -m cluster tests/test_cluster.py; status=$$?; \
	if [ "$$up" = down ]; then bash scripts/slurm-local.sh stop; fi; \
	exit $$status

quick: override SCALE = quick
quick:  ## the main job: small CNN +/- BN at lr 0.1/0.5 on Fashion-MNIST, then its figure (always quick scale)
	$(call train,quick,$(cnn_launcher))
	$(call figure,quick,quick)

fig1:  ## standard vs BN at lr 0.1/0.5: accuracy, activation histograms
	$(call train,fig1,$(cnn_launcher))
	$(call figure,fig1,fig1)

fig2:  ## standard vs BN vs noisy BN (and noise alone): accuracy, histograms, moment shifts
	$(call train,fig2,$(cnn_launcher))
	$(call figure,fig2,fig2)

fig3_cnn:  ## gradient ICS, CNN at lr 0.1/0.01 (train only)
	$(call train,fig3_cnn,$(cnn_launcher))

fig3_dln:  ## gradient ICS, DLN at lr 1e-6/1e-7 (train only)
	$(call train,fig3_dln,$(single_launcher))

fig3: fig3_cnn fig3_dln  ## gradient ICS: both experiments, then the figure
	$(call figure,fig3,fig3_cnn fig3_dln)

fig4_cnn:  ## loss landscape, predictiveness, effective beta: CNN (train only)
	$(call train,fig4_cnn,$(cnn_launcher))

fig4_dln:  ## loss landscape, predictiveness, effective beta: DLN (train only)
	$(call train,fig4_dln,$(single_launcher))

fig4: fig4_cnn fig4_dln  ## landscape smoothness: both experiments, then the figure
	$(call figure,fig4,fig4_cnn fig4_dln)

fig5_cnn:  ## l1/l2/linf normalisations vs standard and BN: CNN (train only)
	$(call train,fig5_cnn,$(cnn_launcher))

fig5_dln:  ## l1/l2/linf normalisations vs standard and BN: DLN (train only)
	$(call train,fig5_dln,$(single_launcher))

fig5: fig5_cnn fig5_dln  ## lp normalisations: both experiments, then the figure
	$(call figure,fig5,fig5_cnn fig5_dln)

browser:  ## the browser reproduction's three figures (small CNN; MNIST at paper scale)
	$(call train,browser,$(cnn_launcher))
	$(call figure,browser,browser)

dln_sweep:  ## the DLN's open loss scale: lr 1e-6/5e-7/2.5e-7/1e-7 x standard, BN, l1; always paper scale (10,000 steps)
	$(MAKE) --no-print-directory _dln_sweep SCALE=paper RUN_ID=$(RUN_ID) RESUME_GOALS="$(RESUME_GOALS)"

_dln_sweep:
	$(call train,dln_sweep,$(single_launcher))
	$(call figure,dln_sweep,dln_sweep)

ALL_FIGURES = fig1 fig2 fig3 fig4 fig5 browser
ALL_EXPERIMENTS = fig1 fig2 fig3_cnn fig3_dln fig4_cnn fig4_dln fig5_cnn fig5_dln browser
all:  ## every experiment and figure at SCALE, in one process: runs that differ only in what they measure train once
# experiments.together lays each sweep out as `make fig1` ... would (same folders, same CSVs, byte for byte)
# and trains each distinct trajectory once; with a launcher in ARGS, or LAUNCHER=slurm, the figure targets
# instead (on SLURM every run is its own job: `make -j all LAUNCHER=slurm` submits the nine sweeps at once)
ifneq (,$(findstring hydra/launcher,$(ARGS))$(on_slurm))
all: $(ALL_FIGURES)
else
all:
	$(resume) $(PY) -m experiments.together $(ALL_EXPERIMENTS) --scale $(SCALE) --seeds $(seed_list) --results $(RESULTS) \
		--run-id $(RUN_ID) $(if $(strip $(LAUNCHER)),,--workers 1) --figures $(ALL_FIGURES) -- $(ARGS)
endif

# Beyond the paper (docs/beyond.md): not part of `make all`; `make report` adds their claims when their runs exist.
curvature_cnn:  ## Hessian lambda_max (train and eval mode), batch sharpness, beta_limit: CNN at lr 0.1 (train only)
	$(call train,curvature_cnn,$(cnn_launcher))

curvature_dln:  ## the same on the full-batch DLN at lr 1e-6 (train only)
	$(call train,curvature_dln,$(single_launcher))

curvature: curvature_cnn curvature_dln  ## curvature against 2/lr, standard vs BN: both experiments, then the figure
	$(call figure,curvature,curvature_cnn curvature_dln)

theory:  ## Theorem 4.1 at every BN layer and the scale invariance of BN's weights (BN, lr 0.1/0.5), then the figure
	$(call train,theory,$(cnn_launcher))
	$(call figure,theory,theory)

signal_cnn:  ## |dL/dW| and effective rank per layer at init, VGG-11/13/16/19, standard vs BN (train only)
	$(call train,signal_cnn,$(cnn_launcher))

signal_dln:  ## the same for the 25-layer DLN (train only)
	$(call train,signal_dln,$(single_launcher))

signal: signal_cnn signal_dln  ## signal propagation at initialisation: both experiments, then the figure
	$(call figure,signal,signal_cnn signal_dln)

beyond: curvature theory signal  ## the three experiments beyond the paper (quick: about 5 min on 2 idle cores)

# The paper's question for residual networks and transformers (docs/modern.md): not part of `make all`; `make report`
# adds their section when their runs exist. Each experiment is a target; `make modern` runs them all in one process
# (experiments.together: the curvature runs follow resnet's and vit's trajectories, trained once) and draws the figures.
MODERN_EXPERIMENTS = resnet resnet_curvature resnet_signal vit vit_adam vit_warmup vit_curvature vit_signal
MODERN_FIGURES = modern_resnet modern_vit modern_warmup modern_signal
resnet:  ## ResNet-20 standard/BN/Fixup/SkipInit at lr 0.1/0.5: curves, landscape, predictiveness, beta, ICS (train only)
	$(call train,resnet,$(cnn_launcher))

resnet_curvature:  ## ResNet-20's lambda_max in train mode against 2/lr (train only)
	$(call train,resnet_curvature,$(cnn_launcher))

resnet_signal:  ## ResNet-8/20/56/110 at init: branch/skip ratio, |dL/dW|, effective rank (train only)
	$(call train,resnet_signal,$(cnn_launcher))

vit:  ## ViT pre-LN/post-LN/pre-RMSNorm/none at lr 0.1/0.5 (SGD): curves, landscape, predictiveness, beta, ICS (train only)
	$(call train,vit,$(cnn_launcher))

vit_adam:  ## the ViT under Adam at lr 0.003/0.01, no warm-up (train only)
	$(call train,vit_adam,$(cnn_launcher))

vit_warmup:  ## the same with a linear lr warm-up over the first tenth of training (train only)
	$(call train,vit_warmup,$(cnn_launcher))

vit_curvature:  ## the ViT's lambda_max against 2/lr (train only)
	$(call train,vit_curvature,$(cnn_launcher))

vit_signal:  ## the ViT at init with 2/4/8/16 layers: |dL/dW| per unit, branch/skip ratio, effective rank (train only)
	$(call train,vit_signal,$(cnn_launcher))

ifneq (,$(findstring hydra/launcher,$(ARGS))$(on_slurm))
modern: $(MODERN_EXPERIMENTS)  ## every experiment above, then the four figures (quick: about 9 min on 2 idle cores, one seed)
	$(PY) -m experiments.figures $(MODERN_FIGURES) --scale $(SCALE) --results $(RESULTS) --sweep $(foreach e,$(MODERN_EXPERIMENTS),$(call sweep_dir,$(e)))
else
modern:
	$(resume) $(PY) -m experiments.together $(MODERN_EXPERIMENTS) --scale $(SCALE) --seeds $(seed_list) --results $(RESULTS) \
		--run-id $(RUN_ID) $(if $(strip $(LAUNCHER)),,--workers 1) --figures $(MODERN_FIGURES) -- $(ARGS)
endif

# The tutorials' claims (README, "What the tutorials say"): always quick scale, single-threaded jobs two
# at a time; not part of `make all`. `make report` adds their section when their runs exist.
# (under RESULTS like every target: the sweep folder is named here, conf/config.yaml's default is results/)
tut = $(PY) -m experiments.train -m experiment=$(1) seed=$(seed_list) progress=false \
	$(if $(on_slurm),$(launcher) $(slurm_cpu_job),hydra/launcher=parallel) \
	hydra.sweep.dir=$(RESULTS)/$(1)/quick/$(RUN_ID) $(ARGS)
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

figures:  ## redraw every figure from the CSVs (no training; SWEEP= to name the sweeps)
	$(PY) -m experiments.figures --scale $(SCALE) --results $(RESULTS) $(sweep_opt)

report:  ## RESULTS/REPORT.md: every figure and the paper's claims checked on the CSVs (SWEEP= to name the sweeps)
	$(PY) -m experiments.report --results $(RESULTS) --scale $(SCALE) $(sweep_opt)

verify:  ## did you reproduce it? your runs at SCALE against the reference, claim by claim, then the numbers (ARGS=--table: every value)
	$(PY) -m experiments.verify --results $(RESULTS) --scale $(SCALE) --reference $(REFERENCE) $(ARGS)

reference:  ## write REFERENCE (results/reference/SCALE) from the latest runs, then redraw its figures and report
	$(PY) -m experiments.reference --results $(RESULTS) --scale $(SCALE) --out $(REFERENCE)

bench:  ## suite vs bare PyTorch loop, data path, measurement costs, FLOP/s (ARGS=--full for longer)
	$(PY) -m experiments.bench $(ARGS)

notebook:  ## open notebooks/ in JupyterLab (installs the notebook extra, jupyterlab, on first use)
	@$(PY) -c "import jupyterlab" 2>/dev/null || $(PY) -m pip install -e ".[notebook]"
	$(PY) -m jupyter lab notebooks/

clean-results:  ## delete results/ run folders (asks first)
	$(PY) -m experiments.clean_results --results $(RESULTS)
