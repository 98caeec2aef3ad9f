# `make demo` and `make test` work from a fresh clone: they create .venv and install the project when missing.
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CORES  ?= 2

.PHONY: demo test validate test-slurm lint bench gpu-check preflight clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) all

test: $(STAMP)
	$(BIN)/python -m pytest -ra

# The synthetic validation study (config/validation.yaml over the demo config, about 30 min on 2 cores), in its own
# working directory so that it leaves the demo's outputs alone: the report is
# $(VALIDATION_DIR)/results/tables/validation.md.
VALIDATION_DIR ?= results/validation
validate: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --directory $(VALIDATION_DIR) all \
		--configfile $(abspath config/demo.yaml) $(abspath config/validation.yaml)

# Only the test on a real single-node SLURM cluster (as root it apt-installs slurm-wlm + munge when missing).
test-slurm: $(STAMP)
	$(BIN)/python -m pytest -ra -m slurm

# The preflight of a run: make preflight CONFIG="my_tcga.yaml config/dev.yaml" (without CONFIG: the demo).
preflight: $(STAMP)
	$(BIN)/python -m modaltune check $(if $(CONFIG),--configfile $(CONFIG))

lint: $(STAMP)
	$(BIN)/ruff check modaltune tests benchmarks
	$(BIN)/snakemake --lint

# CPU benchmarks; gpu_check.py needs a GPU (`make gpu-check`, JSON in results/gpu_check.json).
bench: $(STAMP)
	@for script in $(filter-out benchmarks/gpu_check.py,$(wildcard benchmarks/*.py)); do \
		echo "== $$script"; $(BIN)/python $$script || exit 1; done

gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py --out results/gpu_check.json

clean:
	rm -rf results/demo results/tiles results/qc .snakemake
