"""Snakemake job: sharpness of trained runs (Keskar et al. 2017 Metric 2.1 + Hessian top
eigenvalue), one JSON per run; the runs of one training pack are measured in one process.

Inputs, each one entry per run in the same order: ``data`` (the prepared dataset the run
trained on), ``models``, ``specs``; output ``sharpness``: the runs' JSON files."""

import json

import torch

from largebatch.analysis.keskar_measure import run_sharpness
from largebatch.data import load_dataset
from largebatch.logs import job_logger
from largebatch.models import build_model
from largebatch.train import load_weights, resolve_device

log = job_logger(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
cfg = snakemake.params.cfg
device = resolve_device(snakemake.params.device)
datasets = {}
for data_path, spec_path, model_path, out_path in zip(snakemake.input.data, snakemake.input.specs,
                                                      snakemake.input.models, snakemake.output.sharpness):
    with open(spec_path) as f:
        spec = json.load(f)
    if data_path not in datasets:
        datasets[data_path] = load_dataset(data_path, device)
    data = datasets[data_path]
    model = build_model(spec, data.input_shape, data.num_classes).to(device)
    model.load_state_dict(load_weights(model_path, device))
    n = min(cfg["samples"] or data.n_train, data.n_train)  # a fixed subset: the first n training samples
    doc = run_sharpness(model, data.x_train[:n], data.y_train[:n], eval_bn=spec["eval_bn"],
                        epsilons=cfg["epsilons"], subspace_dim=cfg["subspace_dim"], max_iter=cfg["max_iter"],
                        seed=spec["seed"], hessian_iters=cfg["hessian_iters"], batch=cfg["batch"])
    doc["run"] = spec["run"]
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=2)
    log.info(f"{spec['run']}: loss {doc['loss']:.4g}, sharpness "
             + ", ".join(f"{r['space']} {r['epsilon']:g}: {r['value']:.4g}" for r in doc["sharpness"])
             + f", hessian {doc['hessian_max_eig']:.4g} ({doc['seconds']:.1f}s)")
