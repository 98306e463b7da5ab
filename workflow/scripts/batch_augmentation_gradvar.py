"""Snakemake job (``batch_augmentation_gradient_variance``, declared in
``largebatch.experiments.batch_augmentation``): gradient variance of a BA batch (M augmented
copies of B samples) vs M*B distinct samples, on the initial and final weights of every
seed's M = 1 run. Every path comes from ``snakemake.input`` / ``snakemake.output``."""

import json

import pandas as pd
import torch

from largebatch.augment import get_augmenter
from largebatch.ba import gradient_variance_table, initial_model
from largebatch.data import load_dataset
from largebatch.logs import job_logger
from largebatch.models import build_model
from largebatch.train import load_weights, resolve_device

log = job_logger(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
device = resolve_device(snakemake.params.device)
data = load_dataset(snakemake.input.data, device)
ms = list(snakemake.params.multiplicities)
draws = int(snakemake.params.draws)
rows = []
for row, spec_path, weights in zip(snakemake.params.runs, snakemake.input.specs, snakemake.input.models):
    with open(spec_path) as f:
        spec = json.load(f)
    spec.pop("run")
    aug = get_augmenter(spec["augment"])
    for which in ("initial", "final"):
        if which == "initial":
            model = initial_model(spec, data.input_shape, data.num_classes).to(device)
        else:
            model = build_model(spec, data.input_shape, data.num_classes).to(device)
            model.load_state_dict(load_weights(weights, device))
        # the same draws for both models of a seed; seeds differ between runs
        table = gradient_variance_table(model, data.x_train, data.y_train, spec["batch_size"], ms, aug,
                                        draws=draws, seed=1000 + spec["seed"])
        for r in table:
            rows.append({"run": row["run"], "seed": row["seed"], "model": which, **r})
        log.info("seed %s, %s weights: %s", row["seed"], which,
                 ", ".join(f"{r['scheme']} M={r['multiplicity']}: {r['trace_cov']:.4g}" for r in table))
out = pd.DataFrame(rows)
out["n_train"] = data.n_train
out.to_csv(snakemake.output.gradvar, index=False)
