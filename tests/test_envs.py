"""The conda env pins the same versions as the venv (pyproject.toml / requirements.lock)."""

import re

import yaml

from conftest import REPO


def _lock():
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)$", line.strip())
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def test_conda_env_pins_match_the_lock_file():
    env = yaml.safe_load((REPO / "envs" / "largebatch.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    lock = _lock()
    assert len(pip) >= 10
    for req in pip:
        name, version = req.split("==")
        assert lock.get(name.lower()) == version, f"envs/largebatch.yaml pins {req}, requirements.lock has {lock.get(name.lower())}"
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert python == "python=3.11"


def test_pyproject_pins_torch_and_torchvision_exactly():
    text = (REPO / "pyproject.toml").read_text()
    lock = _lock()
    for name in ("torch", "torchvision", "snakemake"):
        version = re.search(rf'"{name}==([^"]+)"', text).group(1)
        assert lock[name] == version


def test_every_rule_has_a_conda_env_and_a_log():
    import subprocess

    from conftest import LOCAL_ENV, SNAKEMAKE

    proc = subprocess.run([SNAKEMAKE, "--lint", "--config", "scale=tiny"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=LOCAL_ENV)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
