# The README's two commands: `make demo` (set up, run the demo workflow) and `make test` (set up, run tests).
# Both create .venv with the TensorFlow side, the torch side (torch 2.13.0, the CPU build) and Snakemake.
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV)/bin)
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
export PATH := $(BIN):$(PATH)

.PHONY: demo demo-large slurm-profile test lint setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[tf,torch,workflow,dev]"
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	$(BIN)/snakemake --profile profiles/local all
	$(BIN)/snakemake --profile profiles/local all --report results/report.zip
	@echo "Report: $(CURDIR)/results/report.zip (unzip, open report.html); pages in $(CURDIR)/results/report/"
	@echo "Evaluations (eval.tsv of each combination):"
	@$(BIN)/python -c 'import yaml; from tf2lightning.run import iter_runs; c = yaml.safe_load(open("config/config.yaml")); [print(f"  $(CURDIR)/results/{t}/eval.tsv") for t in c.get("targets") or [f"{f}/{d}_{a}" for f, d, a in iter_runs(c)]]'
	$(BIN)/python -m tf2lightning.claims config/config.yaml results

# The larger demo: every configured combination (about an hour on 2 cores).
demo-large: $(STAMP)
	$(BIN)/snakemake --profile profiles/local --configfile config/demo_large.yaml all

# Install profiles/slurm as the named profile `slurm` (Snakemake's user config dir, ~/.config/snakemake/slurm
# on Linux), so `snakemake --profile slurm all` works from the repository root. Never overwrites a profile
# of that name that it did not install, or that was edited since.
slurm-profile: $(STAMP)
	$(BIN)/tf2lightning install-profile profiles/slurm

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests workflow benchmarks
	$(BIN)/ruff format --check src tests workflow benchmarks
	$(BIN)/snakemake --lint

clean:
	rm -rf results .snakemake
