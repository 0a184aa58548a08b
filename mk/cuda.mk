# The GPU worker: `make cuda` builds target/release/nergrid-cuda (included by the Makefile).
#
# Why a second binary: candle 0.11 links the CUDA libraries at build time (cudarc's
# `dynamic-linking`; its `dynamic-loading` cannot be enabled beside it), so a binary built with
# `--features cuda` does not even start on a machine without the NVIDIA driver. The CPU binary
# `nergrid` stays the front end everywhere (validate, plan, report, slurm, the scheduler and CPU
# runs); it starts `nergrid-cuda worker ...` for each run placed on a GPU, when that file lies
# beside it (or NERGRID_CUDA_WORKER names it). See README, "GPUs".
#
# Without a CUDA toolkit on the machine, the toolkit comes from the CUDA 13.0 wheels on PyPI,
# installed into a git-ignored venv under target/. The driver library (libcuda.so.1) is not in
# any wheel: the link step uses a stub with the driver's symbols, made here from cudarc's own
# declarations. The stub only satisfies the linker; it is never on the run-time library path.
#
#   make cuda                                  # toolkit from PyPI, sm_90 (H100/H200)
#   make cuda CUDA_COMPUTE_CAP=89              # RTX 4080 (86: A-series, 80: A100)
#   make cuda CUDA_HOME=/usr/local/cuda        # a real CUDA 13.0-13.4 toolkit instead

CUDA_COMPUTE_CAP ?= 90
CUDA_BUILD_DIR   ?= target/cuda-toolchain
CUDA_VENV        := $(CUDA_BUILD_DIR)/venv
CUDA_WHEELS      := nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
                    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cublas==13.0.2.14 \
                    nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88
CUDA_LINK_DIR    := $(abspath $(CUDA_BUILD_DIR)/link)
NERGRID_CUDA     := target/release/nergrid-cuda

ifeq ($(origin CUDA_HOME),undefined)
CUDA_HOME := $(abspath $(CUDA_VENV))/lib/python3/site-packages/nvidia/cu13
CUDA_FROM_WHEELS := 1
endif

.PHONY: cuda cuda-toolchain cuda-link

cuda: cuda-link
	@echo "cuda: building with CUDA_HOME=$(CUDA_HOME) CUDA_COMPUTE_CAP=$(CUDA_COMPUTE_CAP)"
	CUDA_HOME="$(CUDA_HOME)" PATH="$(CUDA_HOME)/bin:$$PATH" CUDA_COMPUTE_CAP=$(CUDA_COMPUTE_CAP) \
	  LIBRARY_PATH="$(CUDA_LINK_DIR)$${LIBRARY_PATH:+:$$LIBRARY_PATH}" \
	  $(CARGO) build --release --features cuda
	strip -o $(NERGRID_CUDA) target/release/nergrid
	$(CARGO) build --release
	@ls -l $(NERGRID_CUDA) target/release/nergrid
	@echo "cuda: $(NERGRID_CUDA) needs at run time:"; readelf -d $(NERGRID_CUDA) | grep NEEDED

# The toolkit from PyPI (a `python3.X` site-packages is reached through a `python3` link).
cuda-toolchain: $(CUDA_VENV)/.installed
$(CUDA_VENV)/.installed:
	$(PYTHON) -m venv $(CUDA_VENV)
	$(CUDA_VENV)/bin/pip install --quiet --no-deps $(CUDA_WHEELS)
	cd $(CUDA_VENV)/lib && ln -sfn python3.* python3
	touch $@

# Unversioned names for the linker (the wheels ship only libcublas.so.13 and the like) and the
# driver stub, all in one directory given to the linker through LIBRARY_PATH.
cuda-link: $(if $(CUDA_FROM_WHEELS),cuda-toolchain)
	@set -e; mkdir -p "$(CUDA_LINK_DIR)"; \
	for lib in cublas cublasLt curand nvrtc cudart; do \
	  f=$$(ls "$(CUDA_HOME)"/lib/lib$$lib.so.[0-9]* "$(CUDA_HOME)"/lib64/lib$$lib.so.[0-9]* 2>/dev/null \
	       | grep -v alt | head -n 1); \
	  [ -n "$$f" ] || { echo "cuda: lib$$lib.so.* not found under $(CUDA_HOME)" >&2; exit 1; }; \
	  ln -sfn "$$f" "$(CUDA_LINK_DIR)/lib$$lib.so"; \
	done; \
	cudarc=$$($(CARGO) metadata --format-version 1 --features cuda 2>/dev/null | $(PYTHON) -c \
	  'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="cudarc"))'); \
	sys="$$(dirname "$$cudarc")/src/driver/sys/mod.rs"; \
	sed -n 's/^ *fn \(cu[A-Za-z0-9_]*\)(.*/int \1(void) { return 999; }/p' "$$sys" | sort -u > "$(CUDA_LINK_DIR)/cuda_stub.c"; \
	echo "cuda: driver stub with $$(wc -l < "$(CUDA_LINK_DIR)/cuda_stub.c") symbols"; \
	cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$(CUDA_LINK_DIR)/libcuda.so" "$(CUDA_LINK_DIR)/cuda_stub.c"

# What a GPU machine without Rust or network needs for benches/gpu/check.sh, compressed to
# carry (under 64 MiB): both binaries, MiniLM with fp16 weights (the check restores f32), and
# copies of the 1177 file and the Trainer yardstick when ../shared is beside the checkout.
# Needs a python with torch and safetensors: make gpu-bundle PYTHON=/path/to/venv/bin/python
GPU_BUNDLE := target/gpu-bundle
.PHONY: gpu-bundle
gpu-bundle: models
	@test -x $(NERGRID_CUDA) || { echo "gpu-bundle: run make cuda first" >&2; exit 1; }
	rm -rf $(GPU_BUNDLE) && mkdir -p $(GPU_BUNDLE)
	strip -o $(GPU_BUNDLE)/nergrid target/release/nergrid
	cp $(NERGRID_CUDA) $(GPU_BUNDLE)/nergrid-cuda
	xz -T2 -9 $(GPU_BUNDLE)/nergrid $(GPU_BUNDLE)/nergrid-cuda
	$(PYTHON) benches/gpu/model_tool.py downcast $(MINILM_DIR) $(GPU_BUNDLE)/minilm-fp16
	tar -C $(GPU_BUNDLE)/minilm-fp16 -cf - . | xz -T2 -9 > $(GPU_BUNDLE)/all-MiniLM-L6-v2.fp16.tar.xz
	rm -rf $(GPU_BUNDLE)/minilm-fp16
	-cp ../shared/data/swedish-medical-ner/1177_annotated_sentences.txt ../shared/tools/peer/hf_trainer_ner.py $(GPU_BUNDLE)/
	@du -sh $(GPU_BUNDLE); ls -l $(GPU_BUNDLE)
	@echo "on the GPU machine, from the repository root:"
	@echo "  BIN_DIR=$(GPU_BUNDLE) MODEL_DIR=$(GPU_BUNDLE)/all-MiniLM-L6-v2 \\"
	@echo "  NERGRID_SWEDISH_1177=$(GPU_BUNDLE)/1177_annotated_sentences.txt PEER=$(GPU_BUNDLE)/hf_trainer_ner.py \\"
	@echo "  benches/gpu/check.sh"
