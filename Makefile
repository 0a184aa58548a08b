# nergrid: `make sweep` runs the main job, `make test` runs the tests.
CARGO   ?= cargo
SPEC    ?= experiments/demo.toml
BACKEND ?= local
SLURM_FLAGS ?=
NERGRID := target/release/nergrid

.PHONY: sweep test bench clean build lint

# The demo grid (or SPEC=...) end to end: fetch the model, train every run, write the report.
sweep: build models
ifeq ($(BACKEND),slurm)
	$(NERGRID) slurm $(SPEC) --submit --report $(SLURM_FLAGS)
else
	$(NERGRID) run $(SPEC)
	$(NERGRID) report $(SPEC)
endif

build:
	$(CARGO) build --release

# One profile (dev, with the numeric crates optimised; see Cargo.toml) for every test. The
# real-weights tests need all-MiniLM-L6-v2: `make models` fetches it first, and a failed fetch
# fails `make test`.
test: models
	$(CARGO) test --no-fail-fast

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# Speed and memory targets (release builds; not part of `make test`).
bench:
	$(CARGO) bench

clean:
	$(CARGO) clean
	find results -mindepth 1 -maxdepth 1 ! -name .gitkeep -exec rm -rf {} +

-include mk/*.mk
