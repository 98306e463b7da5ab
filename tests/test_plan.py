"""A paper is one declaration: build_plan turns it into every rule's IO, the section refuses
what is not declared, and a notebook gets the same context under Snakemake and in Jupyter."""

import os
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

from conftest import REPO  # noqa: E402
from largebatch import paths  # noqa: E402
from largebatch.experiments import PAPERS, ConfigError, build_plan  # noqa: E402
from largebatch.experiments.base import Figure, Job, Paper, Table  # noqa: E402
from largebatch.notebook import context  # noqa: E402
from largebatch.report import Section  # noqa: E402


def _config(scale="tiny", papers=None):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["scale"] = scale
    if papers:
        config["papers"] = papers
    return config


def test_every_paper_declares_its_outputs_and_the_section_rule_writes_them():
    plan = build_plan(_config())
    assert list(plan.sections) == list(_config()["papers"])
    for key, io in plan.sections.items():
        decl = PAPERS[key]
        assert decl.key == key and decl.title and decl.category
        outs = plan.outputs[key]
        assert outs, f"{key} declares no table or figure"
        assert io.output["section"] == paths.section_file(key) and io.output["claims"] == paths.claims_file(key)
        for o in outs:
            assert io.output[o.name] == paths.item_file(key, o.kind, o.name)
            assert o.caption.strip(), f"{key}: {o.name} has no caption"
        assert io.params["scale"] == "tiny" and io.params["runs"] == plan.tables[key]
        # every run of the paper is an input once, as metrics and history
        ids = list(dict.fromkeys(r["run"] for r in plan.tables[key]))
        assert io.input["metrics"] == [paths.run_file(r) for r in ids]
        for job in plan.jobs[key]:
            assert job.name.startswith(f"{key}_"), job.name


def test_section_refuses_undeclared_names_and_missing_declared_items(tmp_path):
    sec = Section("p", "P", [Table("t", "Accuracy after {epochs} epochs."), Figure("f", "A figure.")], outdir=tmp_path)
    with pytest.raises(ValueError, match=r"table 'other' is not declared"):
        sec.table("other", pd.DataFrame({"a": [1]}))
    with pytest.raises(ValueError, match=r"figure 't' is not declared"):
        sec.figure("t", plt.figure())
    with pytest.raises(ValueError, match=r"caption needs \['epochs'\]"):
        sec.table("t", pd.DataFrame({"a": [1]}))
    sec.table("t", pd.DataFrame({"a": [1]}), epochs=3)
    assert sec.items[-1]["caption"] == "Accuracy after 3 epochs."
    sec.claims([])
    with pytest.raises(ValueError, match=r"declared \['f'\] but never added"):
        sec.save()
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    sec.figure("f", fig)
    assert (tmp_path / "captions" / "f.rst").read_text().strip() == "A figure."  # for snakemake --report
    assert sec.save().exists()


def test_declarations_reject_duplicate_and_reserved_names():
    decl = Paper("x", "X", "9 X", plan=lambda b, s: [], outputs=[Table("a", "."), Figure("a", ".")])
    with pytest.raises(ValueError, match="declares \\['a'\\] twice"):
        decl.outputs_for({}, {})
    with pytest.raises(ValueError, match="reserved"):
        Paper("x", "X", "9 X", plan=lambda b, s: [], outputs=[Table("claims", ".")]).outputs_for({}, {})
    with pytest.raises(ValueError, match="identifier"):
        Table("not-a-name", ".")


def test_a_job_name_used_twice_is_a_config_error(monkeypatch):
    decl = PAPERS["baseline"]
    clash = lambda view: [Job("baseline_x", "s.py", {}, {"o": "a"}), Job("baseline_x", "s.py", {}, {"o": "b"})]
    monkeypatch.setitem(PAPERS, "baseline", Paper(decl.key, decl.title, decl.category, decl.plan, decl.outputs,
                                                  jobs=clash))
    with pytest.raises(ConfigError, match="job name 'baseline_x' is taken"):
        build_plan(_config(papers=["baseline"]))


def test_notebook_context_is_the_same_under_snakemake_and_in_jupyter(tmp_path, monkeypatch):
    """What the section rule passes (as Snakemake's `snakemake` object) and what context()
    rebuilds from config.yaml in Jupyter are the same fields and values."""
    config = _config()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    io = build_plan(config).sections["baseline"]
    sm = SimpleNamespace(params=SimpleNamespace(**io.params), input=io.input, output=io.output, config=config,
                         log=["results/logs/baseline/section.log"])
    under_snakemake = context("baseline", {"snakemake": sm})
    cwd = os.getcwd()
    try:
        in_jupyter = context("baseline", {}, config_path=str(tmp_path / "config.yaml"))
    finally:
        os.chdir(cwd)
    for field in ("paper", "scale", "block", "datasets", "rows", "title"):
        assert getattr(under_snakemake, field) == getattr(in_jupyter, field), field
    assert vars(under_snakemake.input) == vars(in_jupyter.input)
    assert vars(under_snakemake.output) == vars(in_jupyter.output)
    assert under_snakemake.scale == "tiny" and under_snakemake.block == config["scales"]["tiny"]["baseline"]
    with pytest.raises(ValueError, match="notebook of 'keskar'"):
        context("keskar", {"snakemake": sm})


def test_the_planning_the_snakefile_imports_is_light():
    """build_plan runs at every Snakemake start (and on a cluster's submit host): the package
    and every paper declaration import no torch, numpy, pandas or matplotlib."""
    import subprocess
    import sys

    code = ("import sys, yaml; from largebatch.experiments import build_plan; "
            f"c = yaml.safe_load(open({str(REPO / 'config.yaml')!r})); build_plan(c); "
            "print(sorted(m for m in ('torch', 'numpy', 'pandas', 'matplotlib', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
