#!/usr/bin/env python3
"""Throughput of `nergrid predict --file` against transformers' token-classification pipeline,
in one sitting, on the same texts, model, strategy, stride and number of CPU threads.

    make models                      # all-MiniLM-L6-v2 into models/
    cargo build --release
    python benches/predict_throughput.py [--texts 1000] [--threads 2] [--stride 128]

The model is all-MiniLM-L6-v2 with a token-classification head (O, B-DIS, I-DIS) drawn from a
fixed seed and saved once in Hugging Face layout, so both tools read the same files. The texts
are 50 to 500 words drawn (seeded) from the model's whole-word vocabulary with now and then a
comma or a full stop; the longest run past the 512-token window, so both tools cut windows
with the same stride. nergrid runs as a whole process (model loading and tokenisation
included) with RAYON_NUM_THREADS set to the thread count; the pipeline runs in this process
after torch.set_num_threads, timed from loading the model to the last entity (Python's start-up
and `import torch` are not counted against it). Prints words/s of each, the ratio, and how many
entities the two found and share.

Needs torch and transformers.
"""
import argparse
import json
import os
import random
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make_model(minilm, out):
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer
    if (out / "config.json").exists():
        return
    labels = {0: "O", 1: "B-DIS", 2: "I-DIS"}
    torch.manual_seed(18)
    model = AutoModelForTokenClassification.from_pretrained(
        str(minilm), num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()})
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(minilm)).save_pretrained(str(out))


def make_texts(vocab_file, n, path):
    words = [w for w in vocab_file.read_text().split("\n") if w.isalpha() and len(w) > 1]
    rng = random.Random(18)
    texts = []
    for _ in range(n):
        text = []
        for i in range(rng.randint(50, 500)):
            w = rng.choice(words)
            text.append(w + ("." if rng.random() < 0.05 else "," if rng.random() < 0.05 else ""))
        texts.append(" ".join(text))
    path.write_text("\n".join(texts) + "\n")
    return texts


def run_nergrid(binary, model, texts_file, args):
    cmd = [str(binary), "predict", "--model", str(model), "--file", str(texts_file), "--format", "jsonl",
           "--aggregation", args.aggregation, "--stride", str(args.stride), "--batch-size", str(args.batch_size)]
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    started = time.perf_counter()
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    found = [json.loads(line)["entities"] for line in out.stdout.splitlines()]
    return seconds, [{(e["type"], e["start"], e["end"]) for e in t} for t in found]


def run_pipeline(model, texts, args):
    import torch
    from transformers import pipeline
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    tagger = pipeline("token-classification", model=str(model), aggregation_strategy=args.aggregation,
                      stride=args.stride, device="cpu")
    found = tagger(texts, batch_size=args.batch_size)
    seconds = time.perf_counter() - started
    return seconds, [{(e["entity_group"], int(e["start"]), int(e["end"])) for e in t} for t in found]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minilm", type=Path, default=ROOT / "models/all-MiniLM-L6-v2")
    p.add_argument("--nergrid", type=Path, default=ROOT / "target/release/nergrid")
    p.add_argument("--work", type=Path, default=ROOT / "target/predict-bench")
    p.add_argument("--texts", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--stride", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--aggregation", default="first", choices=["simple", "first", "average", "max"])
    p.add_argument("--repeats", type=int, default=1, help="alternating pairs of runs")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    model = args.work / "minilm-token-classifier"
    make_model(args.minilm, model)
    texts_file = args.work / f"texts-{args.texts}.txt"
    texts = make_texts(args.minilm / "vocab.txt", args.texts, texts_file)
    n_words = sum(len(t.split()) for t in texts)
    print(f"{len(texts)} texts, {n_words} words, {args.threads} threads, stride {args.stride}, "
          f"batch size {args.batch_size}, aggregation {args.aggregation}")
    for repeat in range(args.repeats):
        ours_s, ours = run_nergrid(args.nergrid, model, texts_file, args)
        theirs_s, theirs = run_pipeline(model, texts, args)
        shared = sum(len(a & b) for a, b in zip(ours, theirs))
        n_ours, n_theirs = sum(map(len, ours)), sum(map(len, theirs))
        print(f"[{repeat + 1}] nergrid predict: {ours_s:7.2f} s {n_words / ours_s:9.0f} words/s {n_ours} entities")
        print(f"[{repeat + 1}] pipeline:        {theirs_s:7.2f} s {n_words / theirs_s:9.0f} words/s {n_theirs} entities")
        print(f"[{repeat + 1}] ratio {theirs_s / ours_s:.2f}x the pipeline's speed; {shared} entities in common")


if __name__ == "__main__":
    main()
