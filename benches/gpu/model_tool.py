#!/usr/bin/env python3
"""Small helpers of the GPU check (benches/gpu/check.sh); standard library only, except the
subcommands that touch weights (torch, safetensors, transformers).

  model_tool.py downcast SRC DST        copy a model directory with fp16 weights (to carry it)
  model_tool.py upcast DIR              back to f32 in place (what nergrid and the Trainer load)
  model_tool.py bert-base TOKENIZER DIR random BERT-base-sized weights (hidden 768, 12 layers)
  model_tool.py merge-toml SPEC         add the [table] lines on stdin into SPEC's table
  model_tool.py summary RESULTS [tokens]   runs, mean test F1 (or train tokens/s) of a store
  model_tool.py compare A B             test F1 and per-epoch train loss of two one-run stores
  model_tool.py trainer JSON            train tokens/s and peak GPU memory of a Trainer line
  model_tool.py overlap RESULTS         whether the runs of a store overlapped in time
"""
import csv
import glob
import json
import os
import shutil
import sys
from datetime import datetime

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def results(store):
    out = []
    for path in sorted(glob.glob(os.path.join(store, "runs", "*", "result.json"))):
        with open(path) as f:
            out.append(json.load(f))
    return out


def downcast(src, dst):
    from safetensors.torch import load_file, save_file

    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        if name != "model.safetensors" and os.path.isfile(os.path.join(src, name)):
            shutil.copy(os.path.join(src, name), dst)
    tensors = load_file(os.path.join(src, "model.safetensors"))
    save_file({k: v.half().contiguous() for k, v in tensors.items()}, os.path.join(dst, "model.safetensors"))


def upcast(directory):
    from safetensors.torch import load_file, save_file

    path = os.path.join(directory, "model.safetensors")
    tensors = load_file(path)
    save_file({k: v.float().contiguous() for k, v in tensors.items()}, path)


def bert_base(tokenizer_dir, out):
    from transformers import BertConfig, BertModel
    import torch

    torch.manual_seed(0)
    with open(os.path.join(tokenizer_dir, "config.json")) as f:
        vocab_size = json.load(f)["vocab_size"]
    config = BertConfig(vocab_size=vocab_size, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                        intermediate_size=3072, max_position_embeddings=512)
    BertModel(config).save_pretrained(out, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if os.path.exists(os.path.join(tokenizer_dir, name)):
            shutil.copy(os.path.join(tokenizer_dir, name), out)


def merge_toml(spec):
    lines = [l for l in sys.stdin.read().splitlines() if l.strip()]
    header, body = lines[0].strip(), lines[1:]
    with open(spec) as f:
        text = f.read().splitlines()
    if header in (l.strip() for l in text):
        at = next(i for i, l in enumerate(text) if l.strip() == header) + 1
        keys = {b.split("=")[0].strip() for b in body}
        end = at
        while end < len(text) and not text[end].strip().startswith("["):
            end += 1
        kept = [l for l in text[at:end] if l.split("=")[0].strip() not in keys]
        text = text[:at] + body + kept + text[end:]
    else:
        text += ["", header] + body
    with open(spec, "w") as f:
        f.write("\n".join(text) + "\n")


def summary(store, what="f1"):
    runs = results(store)
    done = [r for r in runs if r["status"] == "done"]
    if what == "tokens":
        if not done:
            return "no finished run"
        r = done[0]
        return f"{r['timings']['train_tokens_per_sec']:.0f} train tokens/s, test F1 {r['test']['f1']:.4f}"
    f1 = [r["test"]["f1"] for r in done]
    mean = sum(f1) / len(f1) if f1 else float("nan")
    return f"{len(done)}/{len(runs)} runs done, mean test F1 {mean:.4f}"


def epochs(store):
    (path,) = glob.glob(os.path.join(store, "runs", "*", "epochs.csv"))
    with open(path) as f:
        return [float(row["train_loss"]) for row in csv.DictReader(f)]


def compare(a, b):
    (ra,), (rb,) = results(a), results(b)
    la, lb = epochs(a), epochs(b)
    worst = max(abs(x - y) / max(abs(y), 1e-12) for x, y in zip(la, lb))
    return (f"test F1 {ra['test']['f1']:.4f} vs {rb['test']['f1']:.4f}; train loss per epoch "
            f"{[round(x, 4) for x in la]} vs {[round(x, 4) for x in lb]}, largest relative difference {worst:.2e}")


def trainer(path):
    with open(path) as f:
        r = json.loads(f.read().strip().splitlines()[-1])
    return (f"{r['train_tokens_per_second']:.0f} train tokens/s, test F1 {r['test_f1']:.4f}, "
            f"peak GPU memory {r['peak_gpu_mib']:.0f} MiB (torch)")


def overlap(store):
    runs = results(store)
    spans = [(datetime.fromisoformat(r["timings"]["started_at"].replace("Z", "+00:00")),
              datetime.fromisoformat(r["timings"]["finished_at"].replace("Z", "+00:00"))) for r in runs]
    done = sum(r["status"] == "done" for r in runs)
    both = len(spans) == 2 and spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1]
    devices = sorted({r["device"] for r in runs})
    return f"{done}/{len(runs)} done on {', '.join(devices)}, {'overlapping' if both else 'NOT overlapping'}"


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    fns = {"downcast": downcast, "upcast": upcast, "bert-base": bert_base, "merge-toml": merge_toml}
    if cmd in fns:
        fns[cmd](*args)
        return
    print({"summary": summary, "compare": compare, "trainer": trainer, "overlap": overlap}[cmd](*args))


if __name__ == "__main__":
    main()
