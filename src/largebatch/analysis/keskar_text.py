"""Keskar et al. 2017: the section's protocol (paper vs ours) and its caveats, as text.

Built from the config block, the specs the runs were trained with and the runs themselves,
so the text says what was actually run (stop reasons, epochs, caps, sizes).
"""

from __future__ import annotations

import pandas as pd

from ..experiments.keskar import PAPER_PROTOCOL
from .keskar import arm, stop_counts
from .keskar_claims import arm_check

def network_description(block: dict) -> str:
    """'F1: mlp on mnist1d, width 128, depth 3; C1: ...' from the block's networks."""
    return "; ".join(
        f"{n}: {cfg['model']} on {cfg['dataset']}"
        + (f", width {cfg['width']}" if "width" in cfg else "")
        + (f", depth {cfg['depth']}" if "depth" in cfg and cfg["model"] == "mlp" else "")
        + (f", dropout {cfg['dropout']}" if cfg.get("dropout") else "")
        for n, cfg in block["networks"].items())


def _caps(specs: dict[str, dict]) -> str:
    return ", ".join(f"{n}: {s['steps']:,}" for n, s in specs.items())


def _lb_sizes(main: pd.DataFrame, nets: list[str]) -> dict[str, int]:
    return {n: int(arm(main, n, "LB").batch_size.iloc[0]) for n in nets}


def protocol_text(scale_name: str, block: dict, specs: dict[str, dict], main: pd.DataFrame,
                  sweep: pd.DataFrame) -> str:
    """The 'Protocol details' paragraph: networks, optimiser, batch sizes, the stop rule as
    the runs applied it, seeds, BatchNorm mode, the sharpness settings and the sweep."""
    nets = list(block["networks"])
    run_cfg = specs[nets[0]]
    sh = block["sharpness"]
    eps = [float(e) for e in sh["epsilons"]]
    tol_kind = "an absolute" if run_cfg.get("min_delta_mode") == "abs" else "a relative"
    return (
        f"Scale '{scale_name}'. Networks: {network_description(block)}. Adam (lr {run_cfg.get('lr', 0.001)}) for both "
        f"batch sizes, no learning-rate scaling. SB = {block['small_batch']}, LB = "
        f"{block['large_batch_fraction']:.0%} of the training set "
        f"({', '.join(f'{n}: {b:,}' for n, b in _lb_sizes(main, nets).items())}). Every run trains until its training "
        f"loss (mean cross-entropy on the first {run_cfg.get('eval_train_samples') or 'all'} training samples, "
        f"evaluated once per epoch) has not improved by {tol_kind} {run_cfg.get('min_delta', 1e-4):g} for "
        f"{run_cfg.get('patience')} epochs; a cap on updates ({_caps(specs)}) is a safety limit only: a run stopped by "
        f"it (stop reason 'cap') has not converged and fails the claims' precondition, as does one that did not "
        f"learn or diverged. {main.seed.nunique()} seeds per arm; the SB "
        "and LB runs of a seed start from the same initial weights x0 (spec seed), as in the authors' code. "
        "BatchNorm is evaluated with "
        + ("each evaluation batch's own statistics (Keras BN mode 2, as in the authors' code; "
           f"evaluation batch {run_cfg['eval_batch']:,})" if block["eval_bn"] == "batch"
           else "its running statistics (PyTorch eval mode; the authors' code used batch statistics)")
        + "; the sharpness objective and the parametric plot use the same mode. Sharpness: L-BFGS-B, "
        f"{sh['max_iter']} iterations, ε ∈ {{{', '.join(f'{e:g}' for e in eps)}}}, full space (A = I) and a random "
        f"{sh['subspace_dim']}-dimensional subspace (A seeded with the run's seed), on the training loss over the "
        f"first {sh['samples'] or 'all'} training samples; the Hessian's top eigenvalue by {sh['hessian_iters']} "
        "power iterations on the same objective. Batch-size sweep: "
        f"{block['sweep']['network']} at {', '.join(str(b) for b in sorted(sweep.batch_size.unique()))} "
        f"({len(block['sweep']['seeds'])} seed{'s' if len(block['sweep']['seeds']) > 1 else ''} for the extra sizes, "
        "every seed for SB and LB).")


def protocol_rows(block: dict, specs: dict[str, dict], main: pd.DataFrame, sweep: pd.DataFrame) -> list[dict]:
    """The protocol table: each aspect as the paper ran it (``PAPER_PROTOCOL``, with its
    source tags) beside ours, with each network and arm's epochs and stop reasons."""
    nets = list(block["networks"])
    run_cfg = specs[nets[0]]
    sh = block["sharpness"]
    caps = _caps(specs)
    lb_sizes = _lb_sizes(main, nets)
    stops = main.groupby(["network", "arm"]).agg(
        epochs=("epochs", "mean"), stop=("stop_reason", stop_counts))
    ours = {
        "optimizer": f"Adam lr {run_cfg.get('lr', 0.001)}, no scaling",
        "batch sizes": f"SB {block['small_batch']}; LB {block['large_batch_fraction']:.0%}: "
                       + ", ".join(f"{n} {b:,}" for n, b in lb_sizes.items()),
        "stopping": f"patience {run_cfg.get('patience')} epochs on the train loss, safety cap {caps} updates; "
                    + "; ".join(f"{n} {a}: {r.epochs:.0f} epochs (stop reasons: {r.stop})" for (n, a), r in stops.iterrows()),
        "trials": f"{main.seed.nunique()} seeds; SB and LB share x0",
        "networks": network_description(block) + "; F2 not run (no TIMIT)",
        "BatchNorm at evaluation": "batch statistics" if block["eval_bn"] == "batch" else "running statistics",
        "sharpness objective": f"training loss on the first {sh['samples'] or 'all'} training samples, "
                               f"{sh['max_iter']} iterations",
        "batch-size sweep (Fig. 4)": f"{block['sweep']['network']}, trained to the same patience rule, "
                                     f"{sweep.batch_size.nunique()} sizes",
    }
    return [{"aspect": k, "paper": PAPER_PROTOCOL[k], "ours": ours[k]} for k in PAPER_PROTOCOL]


def caveats(main: pd.DataFrame, block: dict, paper_data: bool) -> str:
    """What limits the reading: networks whose runs did not converge or whose arms' train
    accuracies lie too far apart, other data than the paper's, what the margins mean, F2,
    sharpness on a subset."""
    out = []
    tol = block["similar_train_acc_pp"]
    for n in block["networks"]:
        sb, lb = arm(main, n, "SB"), arm(main, n, "LB")
        ok, found = arm_check({"SB": sb, "LB": lb})
        if not ok:
            out.append(f"{n}: not every run converged ({found.split('failed: ', 1)[-1]}); its SB-vs-LB claims "
                       "compare iterates cut short, not minimisers, and are inconclusive whatever their tests say.")
        gap = 100 * abs(lb.train_acc.mean() - sb.train_acc.mean())
        if gap > tol:
            out.append(f"{n}: SB and LB end {gap:.2f} percentage points apart in train accuracy (limit "
                       f"{tol:g}); its test-accuracy gap (K1-{n}) mixes fit and generalisation and is inconclusive.")
    if not paper_data:
        out.append("The published numbers come from MNIST, TIMIT and CIFAR with the full-size networks; ours from "
                   "narrow networks on other data, so only the direction and rough size of effects compare.")
    claims = block["claims"]
    out.append("The equivalence margins are the smallest effects the paper reports (K1: its smallest Table 2 gap; "
               "K2/K3: its smallest LB/SB sharpness ratios; K6: the low end of its distance ratios), so 'not "
               "reproduced' means an effect shown to be smaller than any the paper found."
               + (" K4, K5 and K8 have no published size (margin 0): only a significant effect the other way refutes "
                  "them." if not any([claims["K4"]["margin"], claims["K5"]["margin"], *claims["K8"].values()]) else ""))
    out.append("F2 (TIMIT) is not run: TIMIT is licensed and not available to this workflow.")
    if block["sharpness"]["samples"]:
        out.append(f"Sharpness and the Hessian are measured on the first {block['sharpness']['samples']:,} training "
                   "samples, not the whole training set as in the paper.")
    return " ".join(out)
