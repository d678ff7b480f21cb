# The README's two commands: `make demo` and `make test`. Both set up .venv first (envs/setup.sh).
SHELL := /bin/bash
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
CORES ?= 2
SNAKEMAKE := PATH=$(BIN):$$PATH $(BIN)/snakemake

.PHONY: setup demo demo-beyond test dryrun rehearse lint clean-demo

setup:
	@bash envs/setup.sh

## demo: the whole workflow at toy scale, offline (tables, figures and report.html in results/demo/)
demo: setup
	@start=$$(date +%s); \
	$(SNAKEMAKE) --profile workflow/profiles/demo --cores $(CORES) \
	  && $(SNAKEMAKE) --profile workflow/profiles/demo --report results/demo/report.html --quiet all; status=$$?; \
	echo "== demo wall time: $$(( $$(date +%s) - start )) s (results and report.html in results/demo/)"; exit $$status

## demo-beyond: the demo plus what later papers found better (config/demo_beyond.yaml, an overlay of
## config/demo.yaml): after `make demo` it runs only the new jobs (guidance, prompt families, scaling)
BEYOND := --profile workflow/profiles/demo --configfile config/demo.yaml config/demo_beyond.yaml
demo-beyond: setup
	@start=$$(date +%s); \
	$(SNAKEMAKE) $(BEYOND) --cores $(CORES) \
	  && $(SNAKEMAKE) $(BEYOND) --report results/demo/report.html --quiet all; status=$$?; \
	echo "== demo-beyond wall time: $$(( $$(date +%s) - start )) s (results and report.html in results/demo/)"; exit $$status

## test: the test suite, including one end-to-end demo run through Snakemake (and its overlay,
## config/demo_beyond.yaml). Two workers, one file each at a time: the demo's file (minutes, 2 cores
## at most part of the time) runs beside the rest.
test: setup
	@start=$$(date +%s); \
	PATH=$(BIN):$$PATH $(BIN)/python -m pytest -q -n 2 --dist loadfile tests; status=$$?; \
	echo "== test wall time: $$(( $$(date +%s) - start )) s"; exit $$status

## dryrun: plan the paper's full-scale study without its data, and what each rule of it costs
## (jobs, GPU- and CPU-hours, memory, disk, images, trainings: genrobust cost)
dryrun: setup
	PATH=$(BIN):$$PATH $(BIN)/python -m genrobust cost --profile workflow/profiles/slurm

## rehearse: every report of the full study built from synthetic stand-ins of its GPU jobs' outputs
## (IN-1K shape, a few images per class), through the workflow's own reduce rules: about a minute
rehearse: setup
	PATH=$(BIN):$$PATH $(BIN)/python -m genrobust rehearse --configfile config/config.yaml --out results/rehearsal

## lint: the rule files' formatting and Snakemake's linter on every shipped config (make test runs both)
lint: setup
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(SNAKEMAKE) --lint
	$(SNAKEMAKE) --lint --configfile config/demo.yaml
	$(SNAKEMAKE) --lint --configfile config/demo.yaml config/demo_beyond.yaml
	$(SNAKEMAKE) --lint --configfile config/config.yaml config/beyond.yaml config/benchmarks.yaml config/few_step.yaml

clean-demo:
	rm -rf results/demo
