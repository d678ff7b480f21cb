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
    test_only = {"pytest", "pytest-xdist", "execnet", "snakefmt", "black"}  # make test runs them, no job does
    assert conda_pins == {k: v for k, v in requirements.items() if k not in test_only}
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert python == "python=3.11"


def test_requirements_use_the_torch_build_that_has_a_torchvision():
    # Measured here: the CPU-only torch 2.13.0 has no working torchvision; 2.14.1 + 0.29.1 does.
    requirements = pins((REPO / "envs/requirements.txt").read_text().splitlines())
    assert (requirements["torch"], requirements["torchvision"]) == ("2.14.1", "0.29.1")


def _checkout(root):
    """A checkout's profile folder and its link script, as `make setup` runs it."""
    import shutil

    (root / "envs").mkdir(parents=True)
    shutil.copy(REPO / "envs/link-slurm-profile.sh", root / "envs")
    shutil.copytree(REPO / "workflow/profiles/slurm", root / "workflow/profiles/slurm")
    return root / "workflow/profiles/slurm"


def _link(checkout, xdg):
    import os
    import subprocess

    done = subprocess.run(["bash", str(checkout / "envs/link-slurm-profile.sh")], capture_output=True, text=True,
                          env={**os.environ, "XDG_CONFIG_HOME": str(xdg)})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_profile_link_follows_the_checkout_setup_ran_from(tmp_path):
    """A second checkout's `make setup` moves the link it made for the first (which would
    otherwise run the first checkout's profile, silently); a profile of the user's own stays."""
    xdg, link = tmp_path / "xdg", tmp_path / "xdg/snakemake/slurm"
    first, second = _checkout(tmp_path / "one"), _checkout(tmp_path / "two")
    assert "linked" in _link(tmp_path / "one", xdg) and link.resolve() == first
    assert "re-linked" in _link(tmp_path / "two", xdg) and link.resolve() == second
    assert _link(tmp_path / "two", xdg) == ""  # already this checkout's: nothing to say
    link.unlink()
    (tmp_path / "mine").mkdir()
    link.symlink_to(tmp_path / "mine")  # the user's own profile, elsewhere
    assert "left as it is" in _link(tmp_path / "one", xdg) and link.resolve() == tmp_path / "mine"
    (tmp_path / "mine").rmdir()  # dangling: replaced
    assert "re-linked" in _link(tmp_path / "one", xdg) and link.resolve() == first


def test_conda_side_is_pinned_and_can_build_ffcv():
    """--sdm conda builds FFCV from source: compilers, pkg-config, libjpeg-turbo and OpenCV 4 (what
    its setup.py asks pkg-config for), each pinned to a series."""
    env = yaml.safe_load((REPO / "envs/genrobust.yaml").read_text())
    conda = {d.split("=")[0]: d.partition("=")[2] for d in env["dependencies"] if isinstance(d, str)}
    assert {"c-compiler", "cxx-compiler", "pkg-config", "libjpeg-turbo", "opencv"} <= set(conda)
    assert all(version for name, version in conda.items() if name != "pip"), conda
    assert conda["opencv"].startswith("4.")
