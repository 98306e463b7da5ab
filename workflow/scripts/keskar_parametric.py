"""Snakemake job: Keskar et al. Fig. 3, loss/accuracy along alpha*x_LB + (1-alpha)*x_SB,
for every SB/LB pair (same network, same seed, hence the same x0).

Inputs, each one entry per pair in the order of ``params.pairs`` ({"network", "seed",
"spec"}: the SB run's spec): ``sb`` and ``lb`` (the two runs' weights), ``data`` (the
prepared dataset); output ``curves``: one CSV row per pair and alpha."""

import numpy as np
import pandas as pd
import torch

from largebatch.analysis.keskar_measure import parametric_rows
from largebatch.data import load_dataset
from largebatch.logs import job_logger
from largebatch.models import build_model
from largebatch.train import load_weights, resolve_device

log = job_logger(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
device = resolve_device(snakemake.params.device)
cfg = snakemake.params.cfg
alphas = np.linspace(cfg["alpha_min"], cfg["alpha_max"], cfg["points"])
inp = snakemake.input
data_cache = {}
rows = []
for pair, sb_path, lb_path, data_path in zip(snakemake.params.pairs, inp.sb, inp.lb, inp.data):
    spec = pair["spec"]
    if data_path not in data_cache:
        data_cache[data_path] = load_dataset(data_path, device)
    data = data_cache[data_path]
    torch.manual_seed(spec["seed"])
    model = build_model(spec, data.input_shape, data.num_classes).to(device)
    sb = load_weights(sb_path, device)
    lb = load_weights(lb_path, device)
    curve = parametric_rows(model, sb, lb, data, alphas, eval_bn=spec["eval_bn"], eval_batch=spec["eval_batch"],
                            train_samples=spec["eval_train_samples"])
    for r in curve:
        rows.append({"network": pair["network"], "seed": pair["seed"], **r})
    log.info(f"{pair['network']} seed {pair['seed']}: {len(curve)} points")
pd.DataFrame(rows).to_csv(snakemake.output.curves, index=False)
