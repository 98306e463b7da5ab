"""Hoffer et al. 2019, "Augment your batch" (Batch Augmentation, BA).

Each step takes ``B`` distinct samples and trains on ``M`` independently augmented copies
of each (a batch of ``M*B``); steps per epoch and every other setting are the baseline's
(``M = 1``).  Runs: every multiplicity in ``multiplicities`` x every seed, plus, for each
factor ``k`` in ``longer_baselines``, the ``M = 1`` baseline trained ``k`` times longer
(epochs and learning-rate milestones times ``k``): it sees as many examples as ``M = k``
with a complete schedule, the compute-matched control.  With ``pack: true`` all runs
of a seed train in one job (an execution choice; run ids do not change).
"""

from __future__ import annotations

TITLE = "Hoffer et al. 2019: Augment your batch (batch augmentation)"


def _positive_ints(block: dict, key: str, allow_empty: bool = False) -> list[int]:
    values = block.get(key, [])
    if not isinstance(values, list) or (not values and not allow_empty):
        raise ValueError(f"{key} = {values!r}: give a {'' if allow_empty else 'non-empty '}list of integers")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{key}[{i}] = {v!r}: must be an integer >= 1")
    if len(set(values)) != len(values):
        raise ValueError(f"{key} = {values}: values must be distinct")
    return values


def plan(block: dict, scale: dict) -> list[tuple[dict, dict]]:
    from . import dataset_sizes, seeds_of

    run = dict(block["run"])
    ms = _positive_ints(block, "multiplicities")
    if 1 not in ms:
        raise ValueError(f"multiplicities = {ms}: must include 1, the baseline every M is compared with")
    longer = _positive_ints(block, "longer_baselines", allow_empty=True)
    for k in longer:
        if k == 1 or k not in ms:
            raise ValueError(f"longer_baselines has {k}: each factor must be > 1 and one of multiplicities {ms} "
                             f"(it is the M whose examples seen it matches)")
    if run.get("epochs") is None:
        raise ValueError("run.epochs is required: BA keeps the baseline's epochs (steps per epoch unchanged)")
    if "multiplicity" in run:
        raise ValueError("run.multiplicity must not be set; list the values under multiplicities")
    batch = run.get("batch_size", scale.get("defaults", {}).get("batch_size", 128))
    n = dataset_sizes(scale).get(run.get("dataset", "mnist1d"))
    if n and max(ms) * batch > n:
        raise ValueError(f"max(multiplicities) * run.batch_size = {max(ms) * batch} exceeds the {n} training "
                         f"samples; the gradient-variance analysis needs that many distinct samples")
    pack = bool(block.get("pack"))
    runs = []

    def add(labels: dict, spec: dict) -> None:
        if pack:  # one job per seed: every M (and longer baseline) of a seed in one process
            labels["pack"] = f"seed{labels['seed']}"
        runs.append((labels, spec))

    for m in ms:
        for seed in seeds_of(block):
            add({"arm": "BA", "multiplicity": m, "epoch_factor": 1, "seed": seed},
                {**run, "multiplicity": m, "seed": seed})
    for k in longer:
        spec = {**run, "multiplicity": 1, "epochs": run["epochs"] * k,
                "milestones": [e * k for e in run.get("milestones", [])]}
        for seed in seeds_of(block):
            add({"arm": f"M=1, {k}x epochs", "multiplicity": 1, "epoch_factor": k, "seed": seed},
                {**spec, "seed": seed})
    return runs
