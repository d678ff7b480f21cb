from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

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


def draw_labelled_images(root: Path, classes: int = 4, per_class: int = 8) -> pd.DataFrame:
    """Distinct, smooth-ish images of varied sizes; returns the manifest (path, label)."""
    rows = []
    rng = np.random.default_rng(0)
    for c in range(classes):
        for k in range(per_class):
            h, w = 32 + 2 * (k % 4), 32 + 8 * (k % 2)
            yy, xx = np.mgrid[0:h, 0:w]
            img = np.zeros((h, w, 3), np.uint8)
            img[..., c % 3] = 40 + 50 * c
            img[..., (c + 1) % 3] = (xx * 255 // w).astype(np.uint8)
            img[..., (c + 2) % 3] = (yy * 255 // h).astype(np.uint8) // (k + 1)
            img[rng.integers(0, h), :, :] = 255
            path = root / f"c{c}_{k}.png"
            Image.fromarray(img).save(path)
            rows.append((str(path), c))
    return pd.DataFrame(rows, columns=["path", "label"])


def subset_for_classes(index, class_wnids):
    """The scorer's subset rule, in wnids: (kept rows with their wnids reduced to the model's
    classes, logit mask as wnids)."""
    from genrobust.scoring import select_test_subset

    kept, targets, mask = select_test_subset(index, class_wnids)
    kept = kept.assign(wnids=[";".join(class_wnids[c] for c in t) for t in targets])
    return kept, [class_wnids[c] for c in mask]


def check_semantics(config: dict) -> None:
    """checks.check_semantics on the config's Study, as validation.check_config runs it."""
    from genrobust import checks
    from genrobust.validation import parse_study

    checks.check_semantics(parse_study(config))


def pytest_collection_modifyitems(items):
    """The slow end-to-end demo tests first, so that under `make test` (-n 2 --dist loadfile) their
    file starts at once on one worker and every other file runs beside it on the other."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: the rest keep their order


def figure_warnings(out) -> list[str]:
    """What plots.save found that a reader would miss (an axis without a label, series without a
    legend, text drawn over text), from the report jobs' logs of a run whose `out` is given."""
    return [line for log in sorted(Path(out).glob("logs/make_*.log")) for line in log.read_text().splitlines()
            if line.startswith("WARNING: figure")]
