"""A config value is data, never code: paths holding spaces, quotes, `$(...)`, `;` and
backticks go through real rules of a demo target; nothing they spell executes, and every output
lands under the folder they name."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import yaml

from conftest import REPO, snakemake

HOSTILE = "results/it's a \"demo\" $(touch PWNED_SUBST) ; touch PWNED_SEMI `touch PWNED_TICK`"


def _replace(value, old, new):
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: _replace(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, old, new) for v in value]
    return value


@pytest.mark.slow
def test_hostile_paths_run_a_demo_target_and_execute_nothing(tmp_path):
    shutil.copytree(REPO / "config", tmp_path / "config")
    config = _replace(yaml.safe_load((REPO / "config/demo.yaml").read_text()), "results/demo", HOSTILE)
    (tmp_path / "config/hostile.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    resnet = next(c["timm"] for c in config["reports"]["generated_scatter"]["classifiers"].values()
                  if "timm" in c and "test_resnet" in c["timm"])
    from genrobust.metrics.plan import slug

    targets = [f"{HOSTILE}/index/demo10/val.csv",                         # the demo's data, indexed
               f"{HOSTILE}/generate/demo10/cl80/val/manifest.csv",        # models, a shard, the gather
               f"{HOSTILE}/mix/demo10/mix~real_50.csv",                   # a mixture's rows
               f"{HOSTILE}/metrics/predictions/demo10/val~cl80/timm/{slug(resnet)}.csv"]  # --timm / --file
    result = snakemake(*targets, "--configfile", "config/hostile.yaml", "--profile",
                       str(REPO / "workflow/profiles/demo"), cwd=tmp_path, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    assert not [p.name for p in tmp_path.rglob("PWNED*")]  # nothing the paths spell ran
    out = tmp_path / HOSTILE
    assert all((tmp_path / t).is_file() for t in targets)
    manifest = pd.read_csv(out / "generate/demo10/cl80/val/manifest.csv")
    assert len(manifest) == 100 and all((out / "generate/demo10/cl80/val" / p).is_file() for p in manifest["path"])
    assert (out / "logs").is_dir()
    assert {p.name for p in (tmp_path / "results").iterdir()} == {HOSTILE.split("/", 1)[1]}


def test_every_torch_load_unpickles_weights_only():
    """A checkpoint or weights file cannot run code when loaded: every torch.load in the library
    passes weights_only=True (accelerate's load_state reads only a job's own checkpoint folder)."""
    import re

    calls = []
    for path in (REPO / "workflow/genrobust").rglob("*.py"):
        for line in path.read_text().splitlines():
            if re.search(r"\btorch\.load\(", line) and not line.lstrip().startswith("#"):
                calls.append((path.name, line.strip()))
    assert calls and all("weights_only=True" in line for _, line in calls), calls


def test_the_ema_state_of_a_finetuning_checkpoint_loads_weights_only(tmp_path):
    import torch
    from diffusers.training_utils import EMAModel

    model = torch.nn.Linear(3, 2)
    ema = EMAModel(model.parameters())
    ema.step(model.parameters())
    torch.save(ema.state_dict(), tmp_path / "ema.pt")
    loaded = EMAModel(model.parameters())
    loaded.load_state_dict(torch.load(tmp_path / "ema.pt", map_location="cpu", weights_only=True))
    assert loaded.optimization_step == 1


def test_a_crafted_table_row_is_refused_naming_the_file_and_line(tmp_path):
    """A wnid names files downstream (image ids, class folders): '../' in one stops at the table."""
    from genrobust.datasets import DatasetError
    from genrobust.generate.plan import plan_shard
    from genrobust.mixtures import source_rows

    wnids = ["n01440764", "n01443537"]
    index = pd.DataFrame({"path": ["a/1.JPEG", "b/2.JPEG", "c/3.JPEG"], "wnid": [wnids[0], "../../etc", wnids[1]]})
    index.to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(DatasetError, match=r"train\.csv, line 3: wnid '\.\./\.\./etc' is not one of the 2 classes"):
        plan_shard("img2img", "img2img", "train", {"model_id": "m", "images_per_real": 1}, wnids, 1, 0, 0,
                   str(tmp_path / "train.csv"))
    with pytest.raises(DatasetError, match=r"line 3: wnid '\.\./\.\./etc'"):
        source_rows(str(tmp_path / "train.csv"), "real", wnids)
    assert not list(tmp_path.parent.glob("etc*"))
