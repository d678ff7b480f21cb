"""The run's provenance, for report.html's front page and for whoever is handed the results folder:
which genrobust (version, commit, whether the checkout had changes), which config (its hash as
planned, the files it came from), when the tables were last reduced, on what machine, and the
versions of the stack. Written by the `provenance` rule after every report (report.smk)."""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path

from . import __version__, io

PACKAGES = ("snakemake", "torch", "torchvision", "diffusers", "transformers", "timm", "ffcv", "clean-fid",
            "open_clip_torch", "pandas", "numpy")


def config_hash(config: dict) -> str:
    """sha256 of the config as planned (keys sorted): equal hashes, equal study."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def git_state(checkout: Path) -> tuple[str, str]:
    """(commit, "clean" | "changed" | "not a git checkout") of the workflow's own checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True, timeout=30,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "-", "not a git checkout"
    return commit, "changed" if changed else "clean"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def provenance(config_sha256: str, out: str, configfiles: list[str], checkout: Path, reports: list[str]) -> dict:
    commit, state = git_state(checkout)
    record = {
        "genrobust": __version__,
        "commit": commit,
        "checkout": state,
        "config sha256": config_sha256,
        "config files": " ".join(configfiles) or "-",
        "out": out,
        "reduced at (UTC)": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "host": platform.node(),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "reports": " ".join(reports),
    }
    record.update({package: _version(package) for package in PACKAGES})
    return record


def write_provenance(out_csv: str, **fields) -> dict:
    """provenance.csv (key, value): read by report.html's front page and its own caption."""
    import pandas as pd

    record = provenance(**fields)
    io.write_csv(out_csv, pd.DataFrame({"key": list(record), "value": list(record.values())}))
    return record
