#!/usr/bin/env python3
"""Runs the Trainer yardstick (`hf_trainer_ner.py`, given as the first argument) on the GPU with
`fp16=True` or `bf16=True` (CHECK_PRECISION), and prints its JSON line with the peak GPU memory
that torch allocated added as `peak_gpu_mib`.

The yardstick pins `use_cpu=True`; this wrapper only swaps the device and the precision flags of
its TrainingArguments, so the recipe stays the yardstick's.

  CHECK_PRECISION=fp16 python3 trainer_gpu.py hf_trainer_ner.py --model DIR --data F ...
"""
import io
import json
import os
import runpy
import sys
from contextlib import redirect_stdout

import torch
import transformers

PRECISION = os.environ.get("CHECK_PRECISION", "fp16")
if PRECISION not in ("fp16", "bf16", "fp32"):
    sys.exit(f"CHECK_PRECISION must be fp16, bf16 or fp32, got {PRECISION!r}")

_Original = transformers.TrainingArguments


class GpuTrainingArguments(_Original):
    def __init__(self, *args, **kwargs):
        kwargs["use_cpu"] = False
        kwargs["bf16"] = PRECISION == "bf16"
        kwargs["fp16"] = PRECISION == "fp16"
        super().__init__(*args, **kwargs)


transformers.TrainingArguments = GpuTrainingArguments

script, sys.argv = sys.argv[1], sys.argv[1:]
captured = io.StringIO()
with redirect_stdout(captured):
    runpy.run_path(script, run_name="__main__")
for line in captured.getvalue().splitlines():
    if line.startswith('{"tool"'):
        record = json.loads(line)
        record["precision"] = PRECISION
        record["device"] = torch.cuda.get_device_name(0)
        record["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
        print(json.dumps(record))
