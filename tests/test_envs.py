"""envs/requirements.txt is the single source of truth; the conda env file must agree with it."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def pins(lines):
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"'{line}' is not pinned with =="
            out[name.lower()] = version
    return out


def test_conda_env_pins_equal_requirements():
    requirements = pins((REPO / "envs/requirements.txt").read_text().splitlines())
    env = yaml.safe_load((REPO / "envs/genrobust.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = pins(pip_section)
    test_only = {"pytest", "pytest-xdist", "execnet"}  # make test runs them, no job does
    assert conda_pins == {k: v for k, v in requirements.items() if k not in test_only}
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert python == "python=3.11"


def test_requirements_use_the_torch_build_that_has_a_torchvision():
    # STACK.md: the CPU-only torch 2.13.0 has no working torchvision; 2.14.1 + 0.29.1 does.
    requirements = pins((REPO / "envs/requirements.txt").read_text().splitlines())
    assert (requirements["torch"], requirements["torchvision"]) == ("2.14.1", "0.29.1")
