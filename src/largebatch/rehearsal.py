"""The rehearsal: the paper scale's own plans and code paths, sized to run on a CPU in minutes.

Switched on by a top-level config key (``--configfile config/rehearsal.yaml`` sets it)::

    rehearsal: {batch_divisor: 64, steps: 2, eval_samples: 64, analysis_iters: 2}

``rehearse(block, settings)`` turns the ``paper`` scale block into its rehearsal.  Only sizes
change; every network, width, depth, optimiser, schedule kind, augmentation, normalisation,
lr rule, ghost-batch and strategy choice stays as the paper scale defines it.  The rules, in
the order they are applied:

1. **seeds**: the first seed of every seed list (and of ``test_seeds``).
2. **grids**: every grid axis (``batch_sizes``, ``base_lrs_log2``, ``bn_batch_sizes``,
   ``multiplicities``, ``thresholds``) keeps its first and last value, plus any value another
   key of the block refers to (``bn_batch.reference``, BA's ``longer_baselines`` and
   ``distinct_controls``) and, for Golmant et al., the largest batch of each dataset's own grid
   (``max_batch_fraction`` of its training set).  Lists of networks, datasets, norms and
   strategies are kept whole.  A nested grid that is a subset of its block's grid (Masters &
   Luschi's warm-up and BN-batch batch sizes) keeps the values the thinned grid keeps (else
   its last), so it stays a subset.
3. **data and batches**: every torchvision dataset is the fixture (``largebatch.fixtures``),
   ``batch_divisor`` (D) times smaller than the real training set; every absolute batch size
   (SB, LB, grids, GBN ghost batch, lr base batch, noise-scale batches) is divided by D,
   floored at 2 (BatchNorm needs 2 samples), so batch-to-data ratios and power-of-two
   divisibility stay (Keskar's LB stays 10% of the training set).  D = 64 keeps the largest
   kept batch (Keskar's sweep at 10,000, the 4,096 of Hoffer, SWAP and Masters & Luschi, BA's
   64 x 40) within a few hundred samples: at the real batch one step of SWAP's ResNet-20 at
   width 64 (4,096) takes 171 CPU-s, of Keskar's VGG at 5,000 89 CPU-s (measured, one thread).
4. **budgets**: step budgets (Keskar's ``max_steps`` and a network's ``steps``, Golmant's
   ``steps``) become ``steps`` (Golmant's at least 2, as its schema asks), with their
   ``eval_every`` and ``warmup_steps`` scaled alike (at least 1).  Epoch budgets are scaled by one factor per paper, so that its longest run
   makes ``steps`` updates (most runs make 1); milestones, warm-up and SWAP's phase-2 epochs
   are scaled by the same factor, so every schedule keeps its shape.
5. **analyses**: evaluation and analysis sample counts are capped at ``eval_samples``
   (``eval_train_samples``, also for runs that set none, sharpness ``samples`` and ``subspace_dim`` (its random matrix has
   parameters x subspace_dim entries: 6 GB for VGG at 100), SWAP's plane ``samples``), iteration counts
   at ``analysis_iters`` (L-BFGS-B and Hessian iterations, noise-scale estimates, gradient-
   variance draws, parametric points, plane grid; at least 3 where a curve needs them).

Nothing here imports torch or Snakemake.
"""

from __future__ import annotations

import copy
import math

#: settings of the rehearsal and their defaults
DEFAULTS = {"batch_divisor": 64, "steps": 2, "eval_samples": 16, "analysis_iters": 2}
#: training-set and test-set sizes of the real datasets (the fixtures are these / batch_divisor)
REAL_SIZES = {"mnist": (60000, 10000), "fashion_mnist": (60000, 10000), "cifar10": (50000, 10000),
              "cifar100": (50000, 10000)}
#: keys holding one absolute batch size, and lists of them
BATCH_KEYS = ("small_batch", "large_batch", "batch_size", "base_batch", "ghost_batch_size", "micro_batch",
              "reference", "b_small", "b_big", "bn_batch")
BATCH_LISTS = ("batch_sizes", "bn_batch_sizes")
#: grid axes thinned to their first and last value
AXES = ("batch_sizes", "base_lrs_log2", "bn_batch_sizes", "multiplicities", "thresholds")
#: keys whose value is a number of epochs (a list for milestones)
EPOCH_KEYS = ("epochs", "phase2_epochs", "warmup_epochs", "milestones")
#: analysis sizes: key -> (cap, floor) with "E" = eval_samples and "I" = analysis_iters
CAPS = {"eval_train_samples": "E", "samples": "E", "subspace_dim": "E", "max_iter": "I", "hessian_iters": "I", "n_estimates": "I",
        "draws": "I", "points": 3, "grid": 3}


def settings_of(value) -> dict:
    """The rehearsal settings of a config value (``true`` or a dict), defaults filled in."""
    if value is True:
        value = {}
    if not isinstance(value, dict):
        raise ValueError(f"rehearsal = {value!r}: give true or a mapping of {sorted(DEFAULTS)}")
    unknown = sorted(set(value) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"rehearsal: unknown key(s) {unknown}; allowed: {sorted(DEFAULTS)}")
    out = {**DEFAULTS, **value}
    for key, v in out.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"rehearsal.{key} = {v!r}: must be an integer >= 1")
    return out


def fixture_sizes(kind: str, divisor: int) -> tuple[int, int]:
    """(train, test) images of the fixture of a torchvision dataset kind: the real sizes divided
    by `divisor`, the test set by 4 more (every run evaluates on all of it, at least twice)."""
    train, test = REAL_SIZES[kind]
    return train // divisor, max(2, test // (4 * divisor))


def shrink(b: int, divisor: int) -> int:
    return max(2, b // divisor)


def _thin(values: list, keep=()) -> list:
    if not isinstance(values, list) or len(values) <= 2:
        return values
    kept = {values[0], values[-1], *(v for v in keep if v in values)}
    return [v for v in values if v in kept]


def _walk(node, fn) -> None:
    """Call fn(dict) on every dict inside node (depth first)."""
    if isinstance(node, dict):
        fn(node)
        for v in node.values():
            _walk(v, fn)
    elif isinstance(node, list):
        for v in node:
            _walk(v, fn)


def _thin_grids(paper: str, block: dict, real_sizes: dict[str, int]) -> None:
    keep = {"multiplicities": [*block.get("longer_baselines", []), *block.get("distinct_controls", [])]}
    bn = block.get("bn_batch")
    if isinstance(bn, dict) and bn.get("reference") is not None:
        keep["bn_batch_sizes"] = [bn["reference"]]
    if paper == "golmant":  # the largest batch of each dataset's own grid is one of its ends
        limit = block.get("max_batch_fraction", 1.0)
        keep["batch_sizes"] = [max((b for b in block["batch_sizes"] if b <= limit * real_sizes[d["name"]]),
                                   default=None) for d in block["datasets"].values()]

    def thin(d: dict) -> None:
        for key in AXES:
            if key in d:
                d[key] = _thin(d[key], keep.get(key, ()))
        for key in ("seeds", "test_seeds"):
            if isinstance(d.get(key), list) and d[key]:
                d[key] = d[key][:1]

    outer = block.get("batch_sizes")
    nested = {k: list(v["batch_sizes"]) for k, v in block.items()
              if isinstance(v, dict) and isinstance(v.get("batch_sizes"), list)}
    _walk(block, thin)
    # a nested grid that is a subset of the block's grid (Masters & Luschi's warm-up and BN-batch
    # studies re-train sweep batch sizes) stays one: its values the thinned grid keeps, else its last
    for key, values in nested.items():
        if isinstance(outer, list) and set(values) <= set(outer):
            block[key]["batch_sizes"] = [b for b in values if b in block["batch_sizes"]] or values[-1:]


def _shrink_batches(block: dict, divisor: int) -> None:
    def fix(d: dict) -> None:
        for key in BATCH_KEYS:
            if isinstance(d.get(key), int) and not isinstance(d[key], bool):
                d[key] = shrink(d[key], divisor)
        for key in BATCH_LISTS:
            if isinstance(d.get(key), list):
                d[key] = list(dict.fromkeys(shrink(b, divisor) for b in d[key]))

    _walk(block, fix)


def _cap_analyses(block: dict, s: dict) -> None:
    limits = {"E": s["eval_samples"], "I": s["analysis_iters"]}

    def cap(d: dict) -> None:
        for key, limit in CAPS.items():
            limit = limits.get(limit, limit)
            if key in d and key == "samples" and d[key] is None:
                d[key] = limit  # the whole training set -> its first `eval_samples` images
            elif isinstance(d.get(key), int) and not isinstance(d[key], bool):
                d[key] = min(d[key], limit)

    _walk(block, cap)


def _scale_steps(paper: str, block: dict, steps: int) -> None:
    def to(d: dict, key: str, target: int) -> None:
        factor = target / d[key]
        d[key] = target
        run = d.get("run", {})
        for where in (d, run, *d.get("strategies", {}).values()):
            for k in ("eval_every", "warmup_steps"):
                if isinstance(where.get(k), int) and where[k] > 0:
                    where[k] = max(1, int(round(where[k] * factor)))

    if paper == "golmant" and "steps" in block:  # an epoch budget is scaled with the other epochs
        to(block, "steps", max(2, steps))
    if paper == "keskar":
        to(block, "max_steps", steps)
        for net in block.get("networks", {}).values():
            if net.get("steps"):
                net["steps"] = steps


def _scale_epochs(d, factor: float) -> None:
    def fix(node: dict) -> None:
        for key in EPOCH_KEYS:
            v = node.get(key)
            if key == "milestones" and isinstance(v, list):
                node[key] = [m * factor for m in v]
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
                node[key] = v * factor

    _walk(d, fix)


def longest_run(planned: list[tuple[dict, dict]], sizes: dict[str, int], defaults: dict) -> int:
    """Most updates any epoch-budget run of a plan makes (as the engine counts them)."""
    most = 0
    for _, spec in planned:
        spec = {**defaults, **spec}
        if spec.get("epochs"):
            per_epoch = sizes[spec["dataset"]] // spec["batch_size"]
            most = max(most, int(round(spec["epochs"] * per_epoch)))
    return most


def rehearse_scale(scale: dict, value) -> dict:
    """The rehearsal of a whole scale block (``scales.paper``): datasets, defaults, papers."""
    from .experiments import PAPERS, dataset_sizes

    s = settings_of(value)
    div = s["batch_divisor"]
    real_sizes = dataset_sizes(scale)
    out = copy.deepcopy(scale)
    for name, cfg in out["datasets"].items():
        kind = cfg.get("kind", name)
        if kind not in REAL_SIZES:
            continue
        full = REAL_SIZES[kind][0]
        cfg["train_samples"] = max(2, (cfg.get("train_samples") or full) * fixture_sizes(kind, div)[0] // full)
        cfg["verify_md5"] = False  # fixture files are not torchvision's published ones
    sizes = dataset_sizes(out)
    # runs that evaluate on the whole training set (no eval_train_samples) use its first images
    out["defaults"] = {**out.get("defaults", {}), "eval_train_samples": s["eval_samples"]}
    for paper in PAPERS:
        if paper not in out:
            continue
        block = out[paper]
        _thin_grids(paper, block, real_sizes)
        _shrink_batches(block, div)
        _cap_analyses(block, s)
        _scale_steps(paper, block, s["steps"])
        most = longest_run(PAPERS[paper].plan(copy.deepcopy(block), out), sizes, out.get("defaults", {}))
        if most > s["steps"]:
            _scale_epochs(block, s["steps"] / most)
    return out
