from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may reach a hub


def snakemake(*args: str, cwd: Path = REPO, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run this venv's Snakemake on the repo's Snakefile from `cwd`."""
    exe = Path(sys.executable).with_name("snakemake")
    env = dict(os.environ, PATH=f"{exe.parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run([str(exe), "-s", str(REPO / "Snakefile"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def workdir(tmp_path) -> Path:
    """A working directory holding a copy of config/, as a user's checkout would."""
    shutil.copytree(REPO / "config", tmp_path / "config")
    return tmp_path
