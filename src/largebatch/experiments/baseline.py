"""The batch-size baseline: small vs large batch on the same network and budget.

Not one of the six papers: the smallest experiment that shows the generalisation
gap all of them study, built by the same path the papers use.
"""

TITLE = "Batch-size baseline: small vs large batch"


def plan(block: dict, scale: dict) -> list[tuple[dict, dict]]:
    from . import seeds_of

    runs = []
    for arm, batch in (("SB", block["small_batch"]), ("LB", block["large_batch"])):
        for seed in seeds_of(block):
            labels = {"arm": arm, "batch_size": batch, "seed": seed}
            if block.get("pack"):
                labels["pack"] = arm  # one job per arm: all seeds of an arm in one process
            runs.append((labels,
                         {**block["run"], "batch_size": batch, "seed": seed}))
    return runs
