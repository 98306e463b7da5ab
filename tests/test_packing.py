"""The one packing policy: which runs share a training job."""

import copy

import pytest
import yaml

from conftest import REPO
from largebatch.packing import main, pack_runs, run_cost, stack_speedup, stacks, train_rule
from largebatch.spec import group_key, normalize, run_id


def _runs(specs):
    runs = {}
    for s in specs:
        n = normalize(s)
        runs[run_id(n)] = n
    return runs


def _sweep(seeds=range(6), batches=(32, 64), epochs=2):
    return [{"batch_size": b, "seed": s, "epochs": epochs, "width": 16, "depth": 1} for b in batches for s in seeds]


def test_runs_that_stack_share_a_pack_and_cheap_groups_merge():
    runs = _runs(_sweep())
    owners = {r: "p" for r in runs}
    packs = pack_runs(owners, runs, job_seconds=1e6, cost=lambda s: 1.0)
    assert list(packs) == ["p-00"] and packs["p-00"] == list(runs)  # everything fits one job, in plan order
    packs = pack_runs(owners, runs, job_seconds=2.0, cost=lambda s: 1.0)
    # two stack groups of 6 runs at 1 s each (1.5 s stacked: stack_speedup(6) = 4): one job per
    # group (together 3 s, over the target), every job all of one stack key
    assert stack_speedup(6) == pytest.approx(4.0) and len(packs) == 2
    for ids in packs.values():
        assert len({group_key(runs[r]) for r in ids}) == 1 and len(ids) == 6


def test_a_group_longer_than_the_target_is_split_and_a_long_run_trains_alone():
    runs = _runs(_sweep(seeds=range(8), batches=(32,)))
    owners = {r: "p" for r in runs}
    packs = pack_runs(owners, runs, job_seconds=1.0, cost=lambda s: 1.0)
    # 8 runs of one stack at 1 s each: 1.7 s stacked (stack_speedup(8) = 8 / 1.7), over 1.5x the
    # target -> the fewest parts under it: 2 stacks of 4 (1.3 s each)
    assert stack_speedup(8) == pytest.approx(8 / 1.7) and [len(ids) for ids in packs.values()] == [4, 4]
    # runs estimated longer than the target are each their own job: no pack at all
    assert pack_runs(owners, runs, job_seconds=2.0, cost=lambda s: 5.0) == {}
    # a group up to 1.5x the target stays whole (its stack keeps its size)
    assert list(pack_runs(owners, runs, job_seconds=1.2, cost=lambda s: 1.0).values()) == [list(runs)]
    # runs that cannot stack (dropout) count their full cost
    drop = _runs([{**s, "dropout": 0.1} for s in _sweep(seeds=range(8), batches=(32,))])
    assert [len(v) for v in pack_runs({r: "p" for r in drop}, drop, 2.0, lambda s: 1.0).values()] == [2, 2, 2, 2]
    # nor do runs whose batch vtrain does not stack (a 1-D conv net over 128 samples a step)
    conv = _runs([{**s, "model": "shallow_conv", "batch_size": 256} for s in _sweep(seeds=range(8), batches=(32,))])
    assert [len(v) for v in pack_runs({r: "p" for r in conv}, conv, 2.0, lambda s: 1.0).values()] == [3, 3, 2]
    assert pack_runs(owners, runs, job_seconds=0, cost=lambda s: 1.0) == {}


def test_the_stack_rule_is_vtrains():
    # packing decides without torch what vtrain.prefer_vectorised decides with it
    from largebatch.vtrain import prefer_vectorised

    for keys in ({"model": "mlp", "width": 32, "depth": 2, "batch_size": 8},
                 {"model": "mlp", "width": 128, "depth": 3, "batch_size": 1024},
                 {"model": "mlp", "width": 32, "depth": 2, "batch_size": 8, "dropout": 0.1},
                 {"model": "resnet", "width": 8, "depth": 8, "batch_size": 32},
                 {"model": "resnet", "width": 8, "depth": 8, "batch_size": 64},
                 {"model": "shallow_conv", "width": 8, "batch_size": 2}, {"model": "vgg", "width": 8, "batch_size": 2}):
        spec = normalize({**keys, "epochs": 1})
        for k in (2, 3, 52):
            assert stacks(spec, k) == prefer_vectorised(spec, k), (keys, k)


def test_a_run_never_shares_a_pack_with_the_run_it_starts_from():
    parents = _runs(_sweep(seeds=range(3), batches=(64,)))
    children = _runs([{**s, "init_from": p, "batch_size": 64} for p, s in
                      zip(parents, _sweep(seeds=range(3), batches=(64,)))])
    runs = {**parents, **children}
    packs = pack_runs({r: "p" for r in runs}, runs, job_seconds=1e6, cost=lambda s: 1.0)
    for ids in packs.values():
        members = set(ids)
        assert not any(runs[r]["init_from"] in members for r in ids)
    assert sorted(len(v) for v in packs.values()) == [3, 3]


def test_packs_are_per_paper_and_named_stably():
    runs = _runs(_sweep())
    ids = list(runs)
    owners = {r: ("a" if i < 6 else "b") for i, r in enumerate(ids)}
    packs = pack_runs(owners, runs, job_seconds=1e6, cost=lambda s: 1.0)
    assert packs == {"a-00": ids[:6], "b-00": ids[6:]}
    assert pack_runs(copy.deepcopy(owners), copy.deepcopy(runs), 1e6, lambda s: 1.0) == packs
    assert train_rule(ids[0], packs) == "train_pack_a-00" and train_rule("other", packs) == "train"


def test_cost_grows_with_steps_and_width_and_patience_counts_a_share_of_the_cap():
    base = normalize({"batch_size": 32, "epochs": 4, "width": 16})
    assert run_cost({**base, "epochs": 8}, 4000, "mnist1d") > run_cost(base, 4000, "mnist1d")
    assert run_cost({**base, "width": 256}, 4000, "mnist1d") > run_cost(base, 4000, "mnist1d")
    capped = normalize({"batch_size": 32, "steps": 10000, "patience": 3})
    assert run_cost(capped, 4000, "mnist1d") < run_cost({**capped, "patience": None}, 4000, "mnist1d")


def test_which_job_trains_a_run_from_the_command_line(capsys):
    from largebatch.experiments import build_plan

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["scale"] = "cpu"  # has both: runs in packs and runs in single-run jobs
    plan = build_plan(config)
    path = str(REPO / "config.yaml")
    for rid in (next(r for r in plan.runs if train_rule(r, plan.packs) == "train"),
                next(iter(plan.packs.values()))[0]):
        assert main([rid, "--config", path, "--scale", "cpu"]) == 0
        assert capsys.readouterr().out.split() == [rid, train_rule(rid, plan.packs)]
    assert main(["no-such-run", "--config", path, "--scale", "tiny"]) == 1


@pytest.mark.parametrize("scale", ["tiny", "cpu", "paper"])
def test_every_run_is_trained_by_exactly_one_job(scale):
    from largebatch.experiments import build_plan

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["scale"] = scale
    plan = build_plan(config)
    packed = [r for ids in plan.packs.values() for r in ids]
    assert len(packed) == len(set(packed)) and set(packed) <= set(plan.runs)
    if scale == "paper":  # GPU-hour runs are each their own job
        assert not plan.packs
