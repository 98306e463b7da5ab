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
BA multiplicity the run is compared with), ``epoch_factor`` and ``seed``.  Which job trains
which run is the packing policy's business (``largebatch.packing``), not the plan's.

Besides training, the paper has one analysis job: the gradient variance of a BA batch
against ``M*B`` distinct samples on the initial and final weights of every seed's ``M = 1``
run (``workflow/scripts/batch_augmentation_gradvar.py``, ``largebatch.ba``); the section
(``workflow/notebooks/batch_augmentation.py``, ``largebatch.analysis.batch_augmentation``)
reads its table.
"""

from __future__ import annotations

from .. import paths
from .base import Figure, Job, Paper, Table, View, dataset_sizes, seeds_of

KEY = "batch_augmentation"

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
    seeds = seeds_of(block)
    runs = []

    def add(labels: dict, spec: dict) -> None:
        for seed in seeds:
            runs.append(({**labels, "seed": seed}, {**spec, "seed": seed}))

    for m in ms:
        add({"arm": "BA", "multiplicity": m, "compare_m": m, "epoch_factor": 1}, {**run, "multiplicity": m})
    for k in longer:
        spec = {**run, "multiplicity": 1, "epochs": run["epochs"] * k,
                "milestones": [e * k for e in run.get("milestones", [])]}
        add({"arm": "longer", "multiplicity": 1, "compare_m": k, "epoch_factor": k}, spec)
    for m in distinct:
        add({"arm": "distinct", "multiplicity": 1, "compare_m": m, "epoch_factor": m}, distinct_spec(run, m, n))
    return runs



# --------------------------------------------------------------------------- declaration

#: the gradient-variance job's table (one row per seed, weights, scheme and M)
GRADVAR = paths.paper_file(KEY, "gradient_variance.csv")
#: mini-batches drawn per (scheme, M, weights) when the block does not say
DRAWS = 32


def has_controls(block: dict) -> bool:
    """Whether the block plans a control arm (the section then has the controls table)."""
    return bool(block.get("longer_baselines") or block.get("distinct_controls"))


def baseline_rows(rows: list[dict]) -> list[dict]:
    """The M = 1 BA run of every seed (the baseline's epochs), in seed order: the runs whose
    initial and final weights the gradient-variance job measures."""
    return sorted((r for r in rows if r["arm"] == "BA" and r["multiplicity"] == 1), key=lambda r: r["seed"])


def outputs(block: dict, scale: dict) -> list:
    """The section's tables and figures; the controls table only when the block plans controls."""
    out = [
        Table("final_budget", "Every M after the same {steps} steps: mean ± sd over seeds. τ = {tau:.2f}% is the "
              "M = 1 mean final test accuracy; a run that never reaches it counts as 100% of the budget (first "
              "evaluation at or above τ; evaluations once per epoch plus a log-spaced grid). Train accuracy is on the "
              "un-augmented training set; its rise at the end (last evaluation minus the last one before the final {plateau_pct:g}% "
              "of the steps) shows whether a run had converged. The CI is Welch's, "
              "unadjusted; the claims table holds the tests. Wall time is measured on a shared CPU and shows BA's "
              "extra compute per step."),
        Figure("accuracy_vs_m", "Left: final test accuracy after the baseline's {steps} steps against M (M augmented "
               "copies of each of the B distinct samples of a step; grey dots: seeds; blue: mean), with the "
               "controls: M·B distinct samples at equal steps (squares) and M = 1 trained longer at equal examples "
               "seen (triangles), mean ± sd; dotted: the M = 1 mean. Right: test accuracy during training for every "
               "M, BA (solid, band ± sd) and M·B distinct samples (dashed, same colour as its M); dotted: chance.",
               label="test accuracy vs M, with the controls"),
    ]
    if has_controls(block):
        out.append(Table("controls", "The controls of claims BA3 and BA4, mean ± sd over seeds. Equal compute: M = 1 "
                         "trained k times longer (epochs and learning-rate drops × k) sees as many examples as BA "
                         "with M = k. Distinct samples: a batch of M·B different samples (one augmented copy each) "
                         "for the same steps as BA, learning rate dropped at the same step; it passes over the data "
                         "M times more often. Train accuracies (un-augmented training set) and the control's "
                         "train-accuracy rise at the end of its schedule show that each arm converged."))
    out += [
        Figure("accuracy_vs_examples", "Test accuracy against examples seen (batch seen per step × steps, log "
               "scale) for every M and for the M = 1 baseline trained longer (equal compute); band ± sd over "
               "seeds. At equal examples seen a larger M has made fewer, larger steps.",
               label="test accuracy vs examples seen"),
        Figure("variance_vs_m", "Trace of the covariance of the mini-batch gradient ({draws} draws per point, "
               "train-mode forward; mean ± sd over the {seeds} seeds' models) for M augmented copies of B = {batch} "
               "samples (BA) and for M·B distinct samples, on the initial and the final weights of the M = 1 runs. "
               "Dashed: the fitted variance model a·f(B)/B + b/(MB) (BA) and a·f(MB)/(MB) + b/(MB) (distinct), "
               "a the between-sample and b the augmentation variance (seed means).", label="gradient variance"),
        Table("gradient_variance", "Gradient variance per M (seed means) and relative to the M = 1 value of the "
              "same model (mean ± sd)."),
        Table("variance_model", "Least-squares fit (relative residuals) of the variance model per seed; the "
              "augmentation share b/(a+b) is the part of one sample's gradient variance that comes from "
              "augmentation, the only part BA averages."),
    ]
    return out


def jobs(view: View) -> list[Job]:
    """The gradient variance of BA against M·B distinct samples, on every seed's M = 1 run."""
    base = baseline_rows(view.rows)
    return [Job(
        name=f"{KEY}_gradient_variance",
        script="batch_augmentation_gradvar.py",
        input={"data": view.data_file(base[0]["run"]),
               "specs": [paths.run_file(r["run"], "spec.json") for r in base],
               "models": [paths.run_file(r["run"], "model.pt") for r in base]},
        output={"gradvar": GRADVAR},
        params={"runs": base, "multiplicities": view.block["multiplicities"],
                "draws": (view.block.get("gradient_variance") or {}).get("draws", DRAWS)},
    )]


def inputs(view: View) -> dict:
    return {"gradvar": GRADVAR}


PAPER = Paper(
    key=KEY,
    title=TITLE,
    category="6 Batch augmentation (Hoffer et al. 2019)",
    plan=plan,
    outputs=outputs,
    jobs=jobs,
    inputs=inputs,
)
