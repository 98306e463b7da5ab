"""How far the ε-sharpness maximiser gets: a check of Keskar's Metric 2.1 on trained runs.

Metric 2.1 is a maximum over a box, found inexactly by 10 iterations of L-BFGS-B from the
minimiser (``sharpness.epsilon_sharpness``). At a point where the gradient of the measured
loss is (nearly) zero the first step is (nearly) zero and L-BFGS-B can crawl: the value it
returns is then a lower bound far below the maximum. This probe measures that for given
runs: it maximises on the first ``n`` training samples for several ``n`` (at n below the
training set the minimiser is not stationary for the measured loss, so the first step is not
small) and evaluates each maximiser's perturbation on the whole set used by the section, so
every row's ``transfer`` value is an achieved loss rise on the section's own objective, a
lower bound of its Metric 2.1 no smaller than what one L-BFGS-B run there may report.

    python -m largebatch.analysis.sharpness_probe --workdir DIR RUN [RUN ...]
        [--samples 10000,60000] [--epsilon 0.001] [--eval-bn batch] [--batch 5000]

prints, per run and ``n``: the value L-BFGS-B reports on n samples and the value of its
perturbation on the whole set (``transfer``). A diagnostic: no rule of the workflow reads it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import torch

from ..landscape import FlatParams, loss_and_grad, preserve_model
from ..sharpness import epsilon_sharpness
from .keskar_measure import _mean_ce, bn_mode


def probe(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, samples: list[int], *, epsilon: float,
          eval_bn: str, batch: int | None, max_iter: int = 10) -> list[dict]:
    """For each n of ``samples``: Metric 2.1 maximised on the first n of (x, y) (``value``), and
    the rise that maximiser's perturbation gives on all of (x, y) (``transfer``), both as
    ``(f(w + d) - f(w)) / (1 + f(w)) * 100``."""
    rows = []
    with bn_mode(model, eval_bn), preserve_model(model):
        flat = FlatParams(model)
        w = flat.flatten(model).clone()
        f_all = loss_and_grad(model, _mean_ce, flat, w, x, y, batch, need_grad=False)[0]
        for n in samples:
            n = min(int(n), len(y))
            value, d = epsilon_sharpness(model, _mean_ce, x[:n], y[:n], epsilon, max_iter=max_iter,
                                         batch_size=batch, return_point=True)
            f_d = loss_and_grad(model, _mean_ce, flat, w + d, x, y, batch, need_grad=False)[0]
            rows.append({"samples": n, "epsilon": epsilon, "value": value,
                         "transfer": (f_d - f_all) / (1.0 + f_all) * 100.0, "loss": f_all})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run ids under <workdir>/results/runs")
    ap.add_argument("--workdir", default=".", help="the workflow's directory (holds results/)")
    ap.add_argument("--samples", type=lambda v: [int(n) for n in v.split(",")], default=[10000, 60000],
                    help="subset sizes to maximise on, comma-separated (the first n training samples)")
    ap.add_argument("--epsilon", type=float, default=1e-3)
    ap.add_argument("--eval-bn", default=None, help="batch | running (default: the run's own eval_bn)")
    ap.add_argument("--batch", type=int, default=5000, help="evaluation chunk (the mnist scale's: 5000)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from ..data import load_dataset
    from ..models import build_model
    from ..train import load_weights

    results = Path(args.workdir) / "results"
    rows, cpu = [], torch.device("cpu")
    for run in args.runs:
        run_dir = results / "runs" / run
        if not (run_dir / "model.pt").exists():
            print(f"sharpness_probe: {run_dir / 'model.pt'} not found; train the run first (snakemake) "
                  "or give a run id listed under results/runs", file=sys.stderr)
            return 2
        spec = json.loads((run_dir / "spec.json").read_text())
        data = load_dataset(str(results / "data" / f"{spec['dataset']}.pt"), cpu)
        model = build_model(spec, data.input_shape, data.num_classes)
        model.load_state_dict(load_weights(str(run_dir / "model.pt"), cpu))
        for r in probe(model, data.x_train, data.y_train, args.samples, epsilon=args.epsilon,
                       eval_bn=args.eval_bn or spec["eval_bn"], batch=args.batch):
            rows.append({"run": run, **r})
            print(f"{run} n={r['samples']}: value {r['value']:.5g}, on all {len(data.y_train)}: "
                  f"{r['transfer']:.5g}", flush=True)
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".5g"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
