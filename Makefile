# `make demo` and `make test` work from a fresh clone: they create .venv and install the project when missing.
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CORES  ?= 2

.PHONY: demo test test-slurm lint bench preflight clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) all

test: $(STAMP)
	$(BIN)/python -m pytest -ra

# Only the test on a real single-node SLURM cluster (as root it apt-installs slurm-wlm + munge when missing).
test-slurm: $(STAMP)
	$(BIN)/python -m pytest -ra -m slurm

# The preflight of a run: make preflight CONFIG="my_tcga.yaml config/dev.yaml" (without CONFIG: the demo).
preflight: $(STAMP)
	$(BIN)/python -m modaltune check $(if $(CONFIG),--configfile $(CONFIG))

lint: $(STAMP)
	$(BIN)/ruff check modaltune tests benchmarks
	$(BIN)/snakemake --lint

bench: $(STAMP)
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf results/demo results/tiles results/qc .snakemake
