"""Worker for the threads benchmark: trains `runs` runs one after another on `threads`
intra-op threads, after a warm-up and a start signal (a line on stdin), and prints the
wall seconds the runs took."""

import argparse
import shutil
import sys
import tempfile
import time

import torch

from largebatch.data import load_dataset
from largebatch.train import train_run

ap = argparse.ArgumentParser()
ap.add_argument("--data", required=True)
ap.add_argument("--threads", type=int, required=True)
ap.add_argument("--runs", type=int, required=True)
ap.add_argument("--batch", type=int, required=True)
ap.add_argument("--steps", type=int, required=True)
args = ap.parse_args()
torch.set_num_threads(args.threads)
data = load_dataset(args.data)
spec = {"model": "mlp", "width": 128, "depth": 3, "optimizer": "adam", "lr": 1e-3, "batch_size": args.batch,
        "steps": args.steps, "eval_every": args.steps, "eval_train_samples": 256}
out = tempfile.mkdtemp(prefix="lb-bench-thr-")
quiet = lambda s: None  # noqa: E731
train_run({**spec, "steps": 3, "eval_every": 3}, data, out, checkpoint_every_s=None, log=quiet)  # warm-up
print("ready", flush=True)
sys.stdin.readline()
t0 = time.perf_counter()
for seed in range(args.runs):
    train_run({**spec, "seed": seed}, data, out, checkpoint_every_s=None, log=quiet)
print(f"{time.perf_counter() - t0:.6f}", flush=True)
shutil.rmtree(out, ignore_errors=True)
