"""The batch-size baseline: small vs large batch on the same network and budget.

Not one of the six papers: the smallest experiment that shows the generalisation
gap all of them study, built by the same path the papers use (Keskar et al.'s design:
Adam at one learning rate, LB = 10% of the training set, several starting points).
"""

from __future__ import annotations

from .base import Figure, Paper, Table, seeds_of

TITLE = "Batch-size baseline: small vs large batch"


def plan(block: dict, scale: dict) -> list[tuple[dict, dict]]:
    runs = []
    for arm, batch in (("SB", block["small_batch"]), ("LB", block["large_batch"])):
        for seed in seeds_of(block):
            runs.append(({"arm": arm, "batch_size": batch, "seed": seed},
                         {**block["run"], "batch_size": batch, "seed": seed}))
    return runs


PAPER = Paper(
    key="baseline",
    title=TITLE,
    category="0 Batch-size baseline",
    plan=plan,
    outputs=[
        Table("summary", "Summary: final train and test accuracy and loss of each arm, mean ± sd over seeds, with "
              "the updates and epochs each arm trained and how its runs stopped (stop reason: count; 'patience': "
              "the training loss ceased to improve, 'budget': a fixed epoch budget, 'cap': a safety limit, not "
              "convergence)."),
        Figure("learning_curves", "Learning curves: accuracy (left) and loss (right) per epoch on the training "
               "subset (solid) and the test set (dashed), one line per seed of the small-batch (blue) and the "
               "large-batch (red) runs; grey dotted: chance accuracy.", label="learning curves"),
    ],
)

