# `make bench-trainer`: nergrid's fused engine in fp32 and bf16 against the Hugging Face
# Trainer in f32 and with --bf16, one epoch whole process, alternating, on a BERT-base-sized
# encoder (random weights written into models/ by PEER_PYTHON) and all-MiniLM-L6-v2
# (benches/bf16_vs_trainer.py). PEER_PYTHON needs torch and transformers
# (../shared/tools/peer/README.md). BENCH_ARGS passes options, e.g. "--models minilm --repeats 1".

PEER_PYTHON ?= python3
BENCH_ARGS ?=

.PHONY: bench-trainer
bench-trainer: models
	$(PYTHON) benches/bf16_vs_trainer.py --peer-python $(PEER_PYTHON) $(BENCH_ARGS)
