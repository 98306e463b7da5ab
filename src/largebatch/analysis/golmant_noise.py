"""Golmant et al. 2018, beyond the paper: McCandlish et al.'s gradient noise scale B_simple of
the smallest-batch weights at each threshold (job ``golmant_noise``; imports torch)."""

from __future__ import annotations

from typing import Callable, Sequence

import pandas as pd
import torch
import torch.nn.functional as F

from ..data import load_dataset
from ..models import build_model
from ..noise import gradient_noise_stats
from ..train import load_weights

#: training samples on which the loss at each checkpoint is reported (the first ones)
LOSS_SAMPLES = 4096


def measure_noise(points: Sequence[dict], data_files: dict[str, str], model_files: Sequence[str],
                  specs: dict[str, dict], noise: dict, device: str | torch.device = "cpu",
                  log: Callable[[str], None] = print) -> pd.DataFrame:
    """B_simple of each checkpoint's weights on its training set, one row per point.

    ``points``: ``experiments.golmant.noise_points``; ``model_files[i]``: the weights of
    ``points[i]["run"]``; ``data_files``: dataset name -> prepared file. The model is evaluated
    in eval mode (BatchNorm running statistics; no dropout), with the unbiased two-batch
    estimator of ``largebatch.noise.gradient_noise_stats``.
    """
    if len(model_files) != len(points):
        raise ValueError(f"{len(model_files)} model files for {len(points)} noise points; give one per point")
    cache = {}
    rows = []
    for p, model_file in zip(points, model_files):
        name = p["dataset"]
        if name not in cache:
            cache[name] = load_dataset(data_files[name], device)
        data = cache[name]
        spec = specs[p["run"]]
        model = build_model(spec, data.input_shape, data.num_classes).to(device)
        model.load_state_dict(load_weights(model_file, device))
        model.eval()
        x, y = data.x_train, data.y_train
        b_big = min(noise["b_big"], len(y))
        stats = gradient_noise_stats(model, F.cross_entropy, x, y, b_small=noise["b_small"], b_big=b_big,
                                     n_estimates=noise["n_estimates"], seed=noise.get("seed", 0))
        with torch.no_grad():
            loss = float(F.cross_entropy(model(x[:LOSS_SAMPLES]), y[:LOSS_SAMPLES]))
        rows.append({**p, "step": spec["steps"], "train_loss_sample": loss, **stats})
        log(f"{p['data']} seed {p['seed']} frac {p['frac']}: B_simple = {stats['b_simple']:.1f}")
    return pd.DataFrame(rows)
