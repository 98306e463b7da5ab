"""Snakemake job: Keskar et al. Fig. 3, loss/accuracy along alpha*x_LB + (1-alpha)*x_SB,
for every SB/LB pair (same network, same seed, hence the same x0)."""

import numpy as np
import pandas as pd
import torch

from largebatch.data import load_dataset
from largebatch.experiments.keskar import parametric_rows
from largebatch.logs import job_logger
from largebatch.models import build_model
from largebatch.train import load_weights, resolve_device

log = job_logger(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
device = resolve_device(snakemake.params.device)
cfg = snakemake.params.cfg
alphas = np.linspace(cfg["alpha_min"], cfg["alpha_max"], cfg["points"])
runs = snakemake.params.runs  # {"network", "seed", "sb", "lb", "spec", "data"} per pair
data_cache = {}
rows = []
for pair in runs:
    spec = pair["spec"]
    if pair["data"] not in data_cache:
        data_cache[pair["data"]] = load_dataset(pair["data"], device)
    data = data_cache[pair["data"]]
    torch.manual_seed(spec["seed"])
    model = build_model(spec, data.input_shape, data.num_classes).to(device)
    sb = load_weights(f"results/runs/{pair['sb']}/model.pt", device)
    lb = load_weights(f"results/runs/{pair['lb']}/model.pt", device)
    curve = parametric_rows(model, sb, lb, data, alphas, eval_bn=spec["eval_bn"], eval_batch=spec["eval_batch"],
                            train_samples=spec["eval_train_samples"])
    for r in curve:
        rows.append({"network": pair["network"], "seed": pair["seed"], **r})
    log.info(f"{pair['network']} seed {pair['seed']}: {len(curve)} points")
pd.DataFrame(rows).to_csv(snakemake.output[0], index=False)
