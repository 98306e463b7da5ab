"""Hoffer et al. 2019, "Augment your batch" (Batch Augmentation, BA).

Each step takes ``B`` distinct samples and trains on ``M`` independently augmented copies
of each (a batch of ``M*B``); steps per epoch and every other setting are the baseline's
(``M = 1``).  Runs (every one for every seed):

* ``arm="BA"``: every multiplicity ``M`` in ``multiplicities``;
* ``arm="longer"``: for each factor ``k`` in ``longer_baselines``, the ``M = 1`` baseline
  trained ``k`` times longer (epochs and learning-rate milestones times ``k``): as many
  examples seen as ``M = k`` with a complete schedule, the equal-compute control;
* ``arm="distinct"``: for each ``M`` in ``distinct_controls``, a batch of ``M*B`` distinct
  samples (each augmented once, no copies) for the same number of steps as BA, with the
  learning-rate drop at the same step: the equal-steps control that separates "M copies"
  from "a batch M times larger".

Labels: ``arm``, ``multiplicity`` (copies per sample in the run itself), ``compare_m`` (the
BA multiplicity the run is compared with), ``epoch_factor`` and ``seed``.  With
``pack: true`` every seed of one arm and M trains in one job, so that runs of one batch
shape can be vectorised together (an execution choice; run ids do not change).
"""

from __future__ import annotations

TITLE = "Hoffer et al. 2019: Augment your batch (batch augmentation)"

#: What the paper states for each claim of this section, with where it says so.  No number of
#: the paper's tables is confirmed, so the claims are the paper's words (in ours), not values.
PUBLISHED = {
    "BA1": ("higher accuracy for a fixed budget of optimisation steps (stated; no table value confirmed)",
            "Hoffer et al. 2020 (CVPR version), abstract"),
    "BA2": ("fewer SGD updates to reach the same accuracy (stated; no table value confirmed)",
            "Hoffer et al. 2019, arXiv 1901.09335, abstract"),
    "BA3": ("not claimed: the paper compares at equal steps; this is the equal-compute control",
            "Hoffer et al. 2020 (CVPR version), abstract: gains are 'for a fixed budget of optimisation steps'"),
    "BA4": ("an advantage of BA over plain large batches (stated in the conclusion; no value confirmed)",
            "Hoffer et al. 2019, arXiv 1901.09335, conclusion"),
    "BA5": ("BA lowers the gradient variance (analysed; no value confirmed)",
            "Hoffer et al. 2019, arXiv 1901.09335, abstract and gradient-variance section"),
    "BA6": ("follows from the paper's variance analysis: the M copies of a sample are correlated",
            "Hoffer et al. 2019, arXiv 1901.09335, gradient-variance section"),
}

#: The protocol of the paper's headline run, as the authors' code gives it.
HEADLINE_RUN = ("ResNet-44 + cutout on CIFAR-10, B = 64, M = 40, 100 epochs, SGD lr 0.1, momentum 0.9, "
                "weight decay 1e-4, lr /10 at epoch 81",
                "authors' code (eladhoffer/convNet.pytorch), README command and CIFAR ResNet regime")


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


def distinct_spec(run: dict, m: int, n_train: int) -> dict:
    """The run of ``M*B`` distinct samples per step that matches BA's ``M``: the same steps as
    the BA run (``steps`` budget), the learning-rate drops at the same steps (milestones
    rescaled to the control's shorter epochs) and evaluations every BA epoch."""
    b = run["batch_size"]
    ba_epoch, d_epoch = n_train // b, n_train // (m * b)
    steps = max(1, int(round(run["epochs"] * ba_epoch)))  # the BA run's budget, as the engine computes it
    spec = {k: v for k, v in run.items() if k != "epochs"}
    return {**spec, "batch_size": m * b, "multiplicity": 1, "steps": steps, "eval_every": ba_epoch,
            "milestones": [e * ba_epoch / d_epoch for e in run.get("milestones", [])]}


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
    distinct = _positive_ints(block, "distinct_controls", allow_empty=True)
    for m in distinct:
        if m == 1 or m not in ms:
            raise ValueError(f"distinct_controls has {m}: each must be > 1 and one of multiplicities {ms} "
                             f"(it is the BA run whose batch of M·B samples it matches)")
    if run.get("epochs") is None:
        raise ValueError("run.epochs is required: BA keeps the baseline's epochs (steps per epoch unchanged)")
    for key in ("multiplicity", "steps", "eval_every"):
        if key in run:
            raise ValueError(f"run.{key} must not be set: the plan sets it per arm "
                             f"(list BA's M values under multiplicities; the budget is run.epochs)")
    batch = run.setdefault("batch_size", scale.get("defaults", {}).get("batch_size", 128))
    n = dataset_sizes(scale).get(run.get("dataset", "mnist1d"))
    if n and max(ms) * batch > n:
        raise ValueError(f"max(multiplicities) * run.batch_size = {max(ms) * batch} exceeds the {n} training "
                         f"samples; the gradient-variance analysis and the distinct-samples control need that "
                         f"many distinct samples")
    if distinct and not n:
        raise ValueError(f"distinct_controls needs the size of dataset {run.get('dataset')!r}; define it under "
                         f"datasets")
    pack = bool(block.get("pack"))
    seeds = seeds_of(block)
    runs = []

    def add(labels: dict, spec: dict, pack_name: str) -> None:
        for seed in seeds:
            row = {**labels, "seed": seed}
            if pack:  # one job per arm and M: its seeds share batch shapes, so vtrain can stack them
                row["pack"] = pack_name
            runs.append((row, {**spec, "seed": seed}))

    for m in ms:
        add({"arm": "BA", "multiplicity": m, "compare_m": m, "epoch_factor": 1}, {**run, "multiplicity": m},
            f"M{m}")
    for k in longer:
        spec = {**run, "multiplicity": 1, "epochs": run["epochs"] * k,
                "milestones": [e * k for e in run.get("milestones", [])]}
        add({"arm": "longer", "multiplicity": 1, "compare_m": k, "epoch_factor": k}, spec, f"longer{k}")
    for m in distinct:
        add({"arm": "distinct", "multiplicity": 1, "compare_m": m, "epoch_factor": m}, distinct_spec(run, m, n),
            f"distinct{m}")
    return runs


# TODO(issue 15 port): outputs with captions, analysis jobs and section inputs
from .base import Paper as _Paper  # noqa: E402

PAPER = _Paper(key="batch_augmentation", title=TITLE, category="6 Batch augmentation (Hoffer et al. 2019)", plan=plan, outputs=[])
