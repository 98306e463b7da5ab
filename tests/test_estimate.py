import pytest

from largebatch.estimate import estimate, forward_flops
from largebatch.spec import normalize


def test_mlp_forward_flops_are_the_matmuls():
    spec = normalize({"model": "mlp", "width": 64, "depth": 3, "epochs": 1})
    expected = 2 * (40 * 64 + 64 * 64 * 2 + 64 * 10)
    assert forward_flops(spec, (1, 40), 10) == pytest.approx(expected)


def test_estimate_grows_with_the_budget():
    import yaml

    from conftest import REPO

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.update(scale="tiny", papers=["baseline"])
    small = estimate(config, tflops=1.0, step_ms=0.0)[0]
    config["scales"]["tiny"]["baseline"]["run"]["epochs"] *= 2
    big = estimate(config, tflops=1.0, step_ms=0.0)[0]
    assert small["runs"] == big["runs"] == 6
    assert big["gpu_hours"] == pytest.approx(2 * small["gpu_hours"], rel=0.05)
