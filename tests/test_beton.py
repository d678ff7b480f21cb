"""Betons and loaders on a tiny drawn dataset (4 classes x 8 images, 32-40 px)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import draw_labelled_images
from genrobust import beton as B
from genrobust.beton import draws, ffcv_backend

needs_ffcv = pytest.mark.skipif(not B.ffcv_available(), reason="ffcv is not installed")
# numba prints a harmless KeyError when a freed ffcv pipeline's dispatchers are finalised
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
BATCH = 4


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    manifest = draw_labelled_images(root)
    manifest_path = root / "manifest.csv"
    manifest.to_csv(manifest_path, index=False)
    beton_path = root / "all.beton"
    if B.ffcv_available():
        B.write_beton(manifest, beton_path, max_resolution=256, num_workers=2)
    return {"root": root, "manifest": manifest, "manifest_path": manifest_path,
            "beton": beton_path, "labels": manifest["label"].to_numpy()}


def collect(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def train_loader(data, backend, indices=None, seed=3, resolution=32, num_workers=1):
    return B.create_train_loader(data["beton"], data["manifest_path"], indices, BATCH,
                                 resolution, num_workers, seed, "cpu", backend=backend)


@needs_ffcv
def test_beton_round_trip(data):
    assert (data["beton"]).is_file()
    assert not [p for p in os.listdir(data["root"]) if p.startswith(".")]  # no temp left
    np.testing.assert_array_equal(B.beton_labels(data["beton"]), data["labels"])
    assert B.num_rows(data["beton"]) == 32
    val = B.create_val_loader(data["beton"], None, 5, 32, 1, "cpu")
    assert val.backend == "ffcv" and len(val) == 7
    batches = collect(val)
    labels = torch.cat([y for _, y in batches])
    np.testing.assert_array_equal(labels.numpy(), data["labels"])  # manifest order
    for x, y in batches:
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape[1:] == (3, 32, 32)
        assert x.is_contiguous(memory_format=torch.channels_last)
    x = torch.cat([x for x, _ in batches])
    assert -2.2 < x.min() and x.max() < 2.7  # ImageNet-normalised


@needs_ffcv
def test_train_loader_subset_order_and_resolution(data):
    indices = np.flatnonzero(np.isin(data["labels"], [1, 3]))  # 16 rows
    loader = train_loader(data, "ffcv", indices)
    assert len(loader) == 4
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        labels = torch.cat([y for _, y in collect(loader)]).numpy()
        expected = data["labels"][B.epoch_order(indices, 3, epoch)]
        np.testing.assert_array_equal(labels, expected)  # FFCV RANDOM order, seed + epoch
    loader.set_resolution(64)
    assert collect(loader)[0][0].shape == (BATCH, 3, 64, 64)


@needs_ffcv
def test_train_batches_deterministic_per_seed_and_epoch(data):
    loader = train_loader(data, "ffcv")
    loader.set_epoch(2)
    first = collect(loader)
    loader.set_epoch(1)
    other = collect(loader)
    again = train_loader(data, "ffcv")  # a fresh loader, as in a resumed run
    again.set_epoch(2)
    second = collect(again)
    assert len(first) == len(second) == 8
    for (x1, y1), (x2, y2) in zip(first, second):
        assert torch.equal(y1, y2) and torch.equal(x1, x2)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, other))


@needs_ffcv
def test_plain_loader_matches_ffcv(data):
    for epoch in (0, 1):
        ff, pl = train_loader(data, "ffcv"), train_loader(data, "plain", num_workers=0)
        assert pl.backend == "plain" and len(ff) == len(pl) == 8
        ff.set_epoch(epoch)
        pl.set_epoch(epoch)
        a, b = collect(ff), collect(pl)
        for (xa, ya), (xb, yb) in zip(a, b):
            assert torch.equal(ya, yb)
            assert xa.shape == xb.shape and xa.dtype == xb.dtype
            assert xb.is_contiguous(memory_format=torch.channels_last)
        # same crop boxes and flips: only resampling differs (cv2 area vs PIL bilinear)
        diff = torch.cat([(xa - xb).abs().flatten() for (xa, _), (xb, _) in zip(a, b)])
        assert diff.mean() < 0.2
    vf = collect(B.create_val_loader(data["beton"], data["manifest_path"], 5, 32, 1, "cpu",
                                     backend="ffcv"))
    vp = collect(B.create_val_loader(data["beton"], data["manifest_path"], 5, 32, 2, "cpu",
                                     backend="plain"))
    assert [y.tolist() for _, y in vf] == [y.tolist() for _, y in vp]
    assert [x.shape for x, _ in vf] == [x.shape for x, _ in vp]


def test_plain_loader_alone(data):
    loader = B.create_train_loader(None, data["manifest_path"], [0, 1, 8, 9, 16, 17], 4, 48, 0,
                                   7, "cpu")
    assert loader.backend == "plain" and len(loader) == 1
    (x, y), = collect(loader)
    assert x.shape == (4, 3, 48, 48) and y.dtype == torch.int64
    assert set(y.tolist()) <= {0, 1, 2}


def test_corrupt_image_is_named(data, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"not a jpeg" * 20)
    manifest = data["manifest"].copy()
    manifest.loc[5, "path"] = str(bad)
    if B.ffcv_available():
        out = tmp_path / "x.beton"
        with pytest.raises(ValueError, match="broken.jpg"):
            B.write_beton(manifest, out, num_workers=2)  # raised after ffcv's worker processes
        assert not out.exists() and not list(tmp_path.glob(".x.beton*"))
        manifest.loc[6, "path"] = str(tmp_path / "absent.png")
        with pytest.raises(FileNotFoundError, match="absent.png"):
            B.write_beton(manifest, out)
        manifest.loc[6, "path"] = data["manifest"].loc[6, "path"]
    path = tmp_path / "m.csv"
    manifest.to_csv(path, index=False)
    loader = B.create_plain_val_loader(path, 8, 32, 2, "cpu")  # DataLoader worker processes
    with pytest.raises(Exception, match="broken.jpg"):
        collect(loader)


def test_choose_backend(data, monkeypatch):
    monkeypatch.delenv("GENROBUST_LOADER", raising=False)
    expected = "ffcv" if B.ffcv_available() else "plain"
    assert B.choose_backend(data["beton"], data["manifest_path"]) == expected
    assert B.choose_backend(None, data["manifest_path"]) == "plain"
    monkeypatch.setenv("GENROBUST_LOADER", "plain")
    assert B.choose_backend(data["beton"], data["manifest_path"]) == "plain"
    with pytest.raises(ValueError):
        B.choose_backend(None, None, "plain")


def test_module_works_without_ffcv(data):
    code = (
        "import sys; sys.modules['ffcv'] = None\n"
        "import genrobust.beton as b\n"
        "assert not b.ffcv_available()\n"
        f"l = b.create_train_loader('{data['beton']}', '{data['manifest_path']}', None, 8, 32,"
        " 0, 0, 'cpu')\n"
        "assert l.backend == 'plain' and len(l) == 4\n"
        "print(next(iter(l))[0].shape)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(B.__file__).parents[2])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "torch.Size([8, 3, 32, 32])" in out.stdout


@needs_ffcv
def test_draws_agree_between_python_and_numba():
    """The plain loader's crop boxes are FFCV's: same functions, compiled or not."""
    nb = ffcv_backend._compiled_draws()
    py = (draws.batch_key, draws.sample_seed, draws.uniforms, draws.flip_draw,
          draws.random_crop_box)
    ids = np.array([5, 1, 30, 7], dtype=np.uint64)
    key = py[0](3, ids)
    assert key == nb[0](np.int64(3), ids)
    for pos in range(4):
        seed = py[1](key, pos, draws.SALT_CROP)
        assert seed == nb[1](key, pos, draws.SALT_CROP)
        assert py[3](key, pos) == nb[3](key, pos)
        assert py[4](37, 45, 0.08, 1.0, 0.75, 4 / 3, seed) == \
            tuple(int(v) for v in nb[4](37, 45, 0.08, 1.0, 0.75, 4 / 3, seed))
        i, j, h, w = py[4](37, 45, 0.08, 1.0, 0.75, 4 / 3, seed)
        assert 0 <= i and 0 <= j and 0 < h and 0 < w and i + h <= 37 and j + w <= 45


def test_split_batch_follows_the_mixture():
    assert B.split_batch(8, {"real": 400, "cl80": 400}) == {"real": 4, "cl80": 4}
    assert B.split_batch(512, {"real": 100, "cl80": 800}) == {"real": 57, "cl80": 455}  # 56.9 / 455.1
    assert sum(B.split_batch(7, {"a": 1, "b": 1, "c": 1}).values()) == 7
    with pytest.raises(ValueError, match="raise recipe.batch_size"):
        B.split_batch(4, {"real": 1000, "cl80": 10})


@pytest.mark.parametrize("backend", [pytest.param("ffcv", marks=needs_ffcv), "plain"])
def test_mixture_loader_draws_each_source_in_its_share(data, backend):
    """Two sources (here rows of one beton: 8 of labels 0-1, 16 of labels 2-3): every batch of 8
    holds 3 of the first and 5 of the second, each from its own rows; an epoch ends with the
    source that runs out first; the same epoch gives the same batches again (resume)."""
    halves = {"a": np.flatnonzero(data["labels"] < 2)[:8], "b": np.flatnonzero(data["labels"] >= 2)}

    def loader():
        sources = {name: (data["beton"], data["manifest_path"], rows) for name, rows in halves.items()}
        return B.create_mixture_loader(sources, 8, 32, 1, 5, "cpu", backend=backend)

    first = loader()
    shares = B.split_batch(8, {"a": 8, "b": 16})
    assert shares == {"a": 3, "b": 5} and len(first) == min(8 // 3, 16 // 5) == 2
    first.set_epoch(1)
    batches = collect(first)
    assert len(batches) == 2
    for x, y in batches:
        assert x.shape == (8, 3, 32, 32)
        assert (y[:3] < 2).all() and (y[3:] >= 2).all()  # source order, each from its own rows
    again = loader()
    again.set_epoch(1)
    for (x0, y0), (x1, y1) in zip(batches, collect(again)):
        assert torch.equal(x0, x1) and torch.equal(y0, y1)
    again.set_epoch(2)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(batches, collect(again)))


@needs_ffcv
def test_killed_writer_leaves_no_temporary_and_no_orphaned_workers(data, tmp_path):
    """SIGKILL of a write-beton job mid-way: its workers die with it, and the next run removes
    the temporary beton it left and writes the same rows as an uninterrupted run (same images
    and labels; the byte layout depends on which worker finished a chunk first)."""
    import signal
    import time

    many = data["manifest"].loc[np.repeat(np.arange(32), 150)].reset_index(drop=True)  # 4800 rows
    many.to_csv(tmp_path / "many.csv", index=False)
    code = ("import pandas as pd; from genrobust.beton import write_beton; "
            f"write_beton(pd.read_csv({str(tmp_path / 'many.csv')!r}), {str(tmp_path / 'x.beton')!r}, num_workers=2)")
    env = dict(os.environ, PYTHONPATH=str(Path(B.__file__).parents[2]))
    job = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.time() + 60
    while not list(tmp_path.glob(".x.beton.*")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the workers are running
    children = subprocess.run(["pgrep", "-P", str(job.pid)], capture_output=True, text=True).stdout.split()
    job.send_signal(signal.SIGKILL)
    job.wait()

    def alive():  # python's resource tracker exits on its own once its pipe closes; not a worker
        return [pid for pid in children if Path(f"/proc/{pid}").exists()
                and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
                and "resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_text()]

    deadline = time.time() + 5
    while alive() and time.time() < deadline:
        time.sleep(0.1)
    assert children and not alive(), f"orphaned writer workers {alive()}"
    if list(tmp_path.glob(".x.beton.*")):  # killed before the rename (the usual case)
        B.write_beton(many, tmp_path / "x.beton", num_workers=2)
        assert not list(tmp_path.glob(".x.beton.*"))
    B.write_beton(many, tmp_path / "y.beton", num_workers=2)
    x, y = (collect(B.create_val_loader(tmp_path / f"{n}.beton", None, 256, 32, 1, "cpu")) for n in "xy")
    assert len(x) == len(y) == 19
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(x, y))


def test_ffcv_import_shim_leaves_numba_typed_dict_alone():
    """ffcv's image-mode table is a plain dict (it costs ~4 s of numba JIT per process as a typed
    Dict); numba.typed.Dict itself is numba's again after the import, for everyone else."""
    if not ffcv_backend.ffcv_available():  # the first import of ffcv in this process goes through it
        pytest.skip("ffcv does not import here")
    import numba.typed
    from ffcv.fields.rgb_image import IMAGE_MODES

    assert type(IMAGE_MODES) is dict and IMAGE_MODES == {"jpg": 0, "raw": 1}
    typed = numba.typed.Dict.empty(key_type=numba.types.unicode_type, value_type=numba.types.int64)
    assert type(typed).__module__ == "numba.typed.typeddict"
    with ffcv_backend._plain_dict_for_ffcv_mode_table():
        assert numba.typed.Dict is dict
    assert numba.typed.Dict is type(typed)


FULL_DISK = """
import errno, sys
import ffcv.memory_allocator
from genrobust.cli import main

def no_space(self):
    raise OSError(errno.ENOSPC, "No space left on device")

if sys.argv[4] == "full":
    ffcv.memory_allocator.MemoryAllocator.flush_page = no_space  # forked into every writer process
sys.exit(main(["write-beton", "--table", sys.argv[1], "--source", "real", "--classes", sys.argv[3],
               "--threads", "2", "--out-manifest", sys.argv[2] + ".csv", "--out-beton", sys.argv[2]]))
"""


@needs_ffcv
def test_a_full_disk_ends_the_write_in_one_line_and_a_rerun_writes_it(tmp_path):
    """ffcv's writer waited forever for a worker the full disk had killed."""
    wnids = ["n01440764", "n01443537", "n01484850"]
    manifest = draw_labelled_images(tmp_path, classes=3, per_class=10)
    manifest.assign(wnid=[wnids[c] for c in manifest["label"]]).to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "classes.txt").write_text("\n".join(wnids) + "\n")
    out = tmp_path / "train" / "real.beton"
    run = [sys.executable, "-c", FULL_DISK, str(tmp_path / "rows.csv"), str(out), str(tmp_path / "classes.txt")]
    full = subprocess.run([*run, "full"], capture_output=True, text=True, timeout=120)
    # one error line (a progress bar's last redraw may precede it on the terminal line)
    error = [line for line in full.stderr.splitlines() if "genrobust write-beton: error:" in line]
    assert full.returncode == 2 and len(error) == 1 and f"disk full writing {out}" in error[0], full.stderr[-2000:]
    assert not out.exists() and not list(out.parent.glob(".real.beton.*"))  # nothing half-written stays
    again = subprocess.run([*run, "ok"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert B.num_rows(out) == 30
