#!/usr/bin/env python3
"""nergrid's fused CPU engine in fp32 and bf16 against the Hugging Face Trainer in f32 and with
`--bf16`, whole process, one epoch each, alternating in one sitting: a BERT-base-sized encoder
(random weights, written by benches/write_bert_base.py) and all-MiniLM-L6-v2, on the original
1177 file (brackets removed), the study's split, BIO, batch 16, lr 1e-4, seed 1.

Prints per configuration the median wall time, peak RSS and test F1, the GFLOP/s nergrid's
matrix products reached (over its training loop and test) with their fraction of the AMX limit
(1,024 bf16 FLOP per cycle per core), and the ratios the targets are stated in.

  make bench-trainer PEER_PYTHON=/path/to/venv/bin/python
  python3 benches/bf16_vs_trainer.py --peer-python /path/to/venv/bin/python [--repeats 2]
      [--models bert-base,minilm] [--threads 2] [--skip-trainer]

Standard library only; the Trainer side runs under --peer-python (torch, transformers,
accelerate, datasets, seqeval: see ../shared/tools/peer/README.md). Run it on a quiet machine:
other processes change wall times, so compare the ratios of one sitting only.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peer-python", default="python3", help="python with torch and transformers")
    p.add_argument("--shared", default=str(ROOT.parent / "shared"), help="holds data/ and tools/peer/")
    p.add_argument("--models", default="bert-base,minilm")
    p.add_argument("--repeats", type=int, default=2, help="alternating rounds per model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--skip-trainer", action="store_true", help="nergrid only (a smoke test)")
    p.add_argument("--nergrid-binary", default=None,
                   help="a built `train` bench executable (default: cargo bench --bench train --no-run)")
    p.add_argument("--ghz", type=float, default=None, help="clock for the AMX limit (default: /proc/cpuinfo)")
    return p.parse_args()


def run(cmd, env=None):
    """Runs cmd; returns (wall seconds, peak RSS MiB of that process, the JSON line it printed)."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}")
    # The figures' JSON line: an object with a "tool" key (serde_json writes keys sorted, so it
    # need not come first).
    line = next((l for l in reversed(out.splitlines()) if l.startswith("{") and '"tool"' in l), "{}")
    return wall, usage.ru_maxrss / 1024, json.loads(line)


def nergrid_binary():
    cmd = ["cargo", "bench", "--bench", "train", "--no-run", "--message-format=json"]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == "train" and msg.get("executable"):
            return msg["executable"]
    sys.exit("cargo built no train bench executable")


def model_dirs(a):
    minilm = ROOT / "models/all-MiniLM-L6-v2"
    if not minilm.is_dir():
        subprocess.run(["make", "models"], cwd=ROOT, check=True)
    dirs = {"minilm": minilm}
    if "bert-base" in a.models.split(","):
        bert = ROOT / "models/bert-base-random"
        subprocess.run([a.peer_python, ROOT / "benches/write_bert_base.py", bert, minilm], check=True)
        dirs["bert-base"] = bert
    return dirs


def configurations(a, binary, model, data):
    """(name, command, environment) of the four contenders, in the order they alternate."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads), NERGRID_BENCH_MODEL=str(model),
               NERGRID_SHARED=a.shared, NERGRID_BENCH_EPOCHS=str(a.epochs))
    peer = [a.peer_python, Path(a.shared) / "tools/peer/hf_trainer_ner.py", "--model", model, "--data", data,
            "--data-format", "brackets", "--scheme", "BIO", "--lr", "1e-4", "--epochs", str(a.epochs),
            "--seed", "1", "--split-seed", "67", "--threads", str(a.threads)]
    out = [("nergrid fp32", [binary], dict(env, NERGRID_BENCH_PRECISION="fp32")),
           ("Trainer f32", peer, None),
           ("nergrid bf16", [binary], dict(env, NERGRID_BENCH_PRECISION="bf16")),
           ("Trainer bf16", peer + ["--bf16"], None)]
    return [c for c in out if not (a.skip_trainer and c[0].startswith("Trainer"))]


def clock_ghz(a):
    if a.ghz:
        return a.ghz
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("cpu MHz"):
            return float(line.split(":")[1]) / 1000
    return 2.0


def cpu_line():
    """The CPU's model name and its bf16 features, from /proc/cpuinfo."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name")), "unknown CPU")
    flags = next((l.split(":", 1)[1].split() for l in info.splitlines() if l.startswith("flags")), [])
    bf16 = [f for f in ("amx_bf16", "amx_tile", "avx512_bf16") if f in flags]
    return f"{name} ({', '.join(bf16) or 'no bf16 instructions'})"


def has_amx():
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return " amx_bf16" in info and " amx_tile" in info


def main():
    a = args()
    data = Path(a.shared) / "data/swedish-medical-ner/1177_annotated_sentences.txt"
    binary = a.nergrid_binary or nergrid_binary()
    dirs = model_dirs(a)
    limit = 1024 * clock_ghz(a) * a.threads
    cpu = cpu_line()
    if has_amx():
        print(f"{cpu}; load before: {os.getloadavg()[0]:.2f}; AMX limit {limit:.0f} GFLOP/s ({a.threads} cores)")
    else:
        # No AMX (an AMD EPYC, say): no such limit to compare with; the column says so.
        limit = None
        print(f"{cpu}; load before: {os.getloadavg()[0]:.2f}; this CPU has no AMX (no AMX limit)")
    for name in a.models.split(","):
        configs = configurations(a, binary, dirs[name], data)
        results = {c[0]: [] for c in configs}
        for round_ in range(a.repeats):
            # Alternate, and reverse every other round so no contender always goes first.
            for label, cmd, env in (configs if round_ % 2 == 0 else configs[::-1]):
                wall, rss, line = run(cmd, env)
                results[label].append((wall, rss, line))
                print(f"  {name} {label}: {wall:.1f} s, {rss:.0f} MiB", flush=True)
        report(name, results, limit, os.getloadavg()[0])


def report(name, results, limit, load):
    print(f"\n{name} (median of {len(next(iter(results.values())))}; load after {load:.2f})")
    print(f"| configuration | wall s | peak RSS MiB | test F1 | product GFLOP/s | of AMX limit |")
    print("|---|---|---|---|---|---|")
    median = {}
    for label, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        rss = max(r[1] for r in runs)
        line = runs[-1][2]
        f1 = line.get("test_f1", line.get("test", {}).get("f1", float("nan")))
        rate = statistics.median(r[2].get("product_gflops", float("nan")) for r in runs)
        share = f"{100 * rate / limit:.1f}%" if rate == rate and limit else "-"
        kernels = f" ({line['kernels']})" if "kernels" in line else ""
        print(f"| {label}{kernels} | {wall:.1f} | {rss:.0f} | {f1:.4f} | {rate:.0f} | {share} |")
        median[label] = (wall, rss)
    for ours, theirs in [("nergrid fp32", "Trainer f32"), ("nergrid bf16", "Trainer bf16"),
                         ("nergrid bf16", "Trainer f32")]:
        if ours in median and theirs in median:
            print(f"{theirs} / {ours}: wall {median[theirs][0] / median[ours][0]:.2f}x, "
                  f"peak memory {ours} = {100 * median[ours][1] / median[theirs][1]:.0f}% of {theirs}")


if __name__ == "__main__":
    main()
