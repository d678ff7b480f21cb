"""Writing a manifest into a beton, and reading rows and labels back (beton or manifest)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import multiprocessing
import os
import queue
from pathlib import Path

import numpy as np
import pandas as pd

from genrobust.beton.ffcv_backend import ffcv_available, require_ffcv
from genrobust.io import atomic_path, read_csv


def manifest_columns(manifest: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """The manifest's image paths (str) and int64 labels, checked (columns present, labels
    non-negative integers)."""
    missing = {"path", "label"} - set(manifest.columns)
    if missing:
        raise ValueError(f"manifest lacks column(s) {sorted(missing)}")
    paths = [str(p) for p in manifest["path"]]
    try:
        labels = manifest["label"].astype(np.int64).to_numpy()
    except (TypeError, ValueError) as e:
        raise ValueError(f"manifest labels must be integers: {e}") from e
    if len(labels) and labels.min() < 0:
        raise ValueError("manifest labels must be >= 0")
    return paths, labels


def read_manifest(manifest_path) -> tuple[list[str], np.ndarray]:
    """`manifest_columns` of the manifest CSV at `manifest_path`."""
    return manifest_columns(read_csv(manifest_path))


def _read_rgb(path: str) -> np.ndarray:
    from genrobust.images import open_rgb

    return np.asarray(open_rgb(path))


class _ManifestImages:
    """Indexable (image, label) source for ffcv's DatasetWriter, run in its worker processes.

    An unreadable image must not raise inside a writer process (ffcv's writer would then wait
    forever for the sample count to be reached): it is flagged in shared memory and replaced by
    a 1-pixel placeholder; write_beton raises afterwards, naming the files.
    """

    def __init__(self, paths: list[str], labels: np.ndarray):
        self.paths = paths
        self.labels = labels
        self.failed = multiprocessing.RawArray(ctypes.c_uint8, max(len(paths), 1))

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        # 'proportion' mode picks JPEG vs raw with np.random: seed it per row so the choice
        # does not depend on which worker got the row.
        np.random.seed((i * 2654435761 + 12345) % (2**32))
        try:
            image = _read_rgb(self.paths[i])
            if image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
                raise ValueError(f"bad image shape {image.shape}")
        except Exception:
            self.failed[i] = 1
            image = np.zeros((1, 1, 3), dtype=np.uint8)
        return image, int(self.labels[i])


_WRITING = False  # a beton is being written: its forked workers must die with this process


def _die_with_parent() -> None:
    """In a forked ffcv writer worker, ask Linux to kill it when the job's process dies, so a
    killed write-beton job leaves no orphaned workers behind (registered as an at-fork hook, so
    it holds from the worker's first instruction)."""
    if not _WRITING:
        return
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):  # not Linux: orphans then finish their chunk and exit
        pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_die_with_parent)


def _remove_stale_temporaries(out_path: Path) -> None:
    """Temporary betons a killed job left beside `out_path` (atomic_path names them
    .<name>.<random>.beton); only one job writes a given output at a time."""
    for stale in out_path.parent.glob(f".{out_path.name}.*.beton"):
        stale.unlink(missing_ok=True)


def _check_files_exist(paths: list[str]) -> None:
    absent = [p for p in paths if not os.path.isfile(p)]
    if absent:
        more = f" (and {len(absent) - 5} more)" if len(absent) > 5 else ""
        raise FileNotFoundError(f"{len(absent)} image(s) of the manifest do not exist: "
                                f"{', '.join(absent[:5])}{more}")


def _raise_if_failed(source: _ManifestImages) -> None:
    """Name the images the writer processes could not read (re-read here for the reason)."""
    paths = source.paths
    bad = np.flatnonzero(np.frombuffer(source.failed, dtype=np.uint8)[: len(paths)])
    if not len(bad):
        return
    details = []
    for i in bad[:5]:
        try:
            _read_rgb(paths[i])
            reason = "unreadable in a writer process"
        except Exception as e:  # noqa: BLE001 - reported to the user
            reason = f"{type(e).__name__}: {e}"
        details.append(f"{paths[i]} ({reason})")
    more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
    raise ValueError(f"{len(bad)} corrupt or unreadable image(s) in the manifest: "
                     + "; ".join(details) + more)


def write_beton(manifest: pd.DataFrame, out_path, max_resolution: int = 256,
                jpeg_quality: int = 90, compress_probability: float = 0.5,
                num_workers: int = 2) -> None:
    """Write the manifest's images (row i -> beton index i) into an FFCV beton, atomically."""
    require_ffcv()
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    paths, labels = manifest_columns(manifest)
    if not paths:
        raise ValueError("manifest is empty")
    _check_files_exist(paths)
    source = _ManifestImages(paths, labels)
    fields = {
        "image": RGBImageField(write_mode="proportion", max_resolution=max_resolution,
                               compress_probability=compress_probability,
                               jpeg_quality=jpeg_quality),
        "label": IntField(),
    }
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out_path)
    global _WRITING
    with atomic_path(out_path, suffix=".beton") as tmp:
        writer = DatasetWriter(str(tmp), fields, num_workers=max(1, int(num_workers)))
        _WRITING = True
        try:
            with _failing_workers_end_the_write(writer, out_path):
                writer.from_indexed_dataset(source, chunksize=64)
        finally:
            _WRITING = False
        _raise_if_failed(source)  # inside the block: the temporary file is then discarded


class _WorkerFailed(BaseException):
    """Raised in the writing thread when a writer process reports an error. A BaseException, so
    that no `except Exception` in the code it lands in (tqdm's, ffcv's) swallows it."""


@contextlib.contextmanager
def _failing_workers_end_the_write(writer, out_path: Path):
    """ffcv's writer waits, forever, for the rows or the page list of a worker that died (a full
    disk kills them while they write their pages): its workers report an error here instead, and
    a signal ends the wait (a blocked read included) with one line naming the beton; the other
    workers are stopped and the temporary file discarded."""
    import _thread
    import signal
    import threading

    import ffcv.writer

    failures, done = multiprocessing.Queue(), threading.Event()
    work = ffcv.writer.worker_job_indexed_dataset

    def guarded(*args):
        try:
            work(*args)
        except BaseException as err:
            failures.put((getattr(err, "errno", None), f"{type(err).__name__}: {err}"))
            raise

    def stop(signum, frame):
        raise _WorkerFailed

    try:  # a signal interrupts a blocking read in the writing thread; interrupt_main would not
        previous = signal.signal(signal.SIGUSR1, stop)
    except ValueError:  # not the main thread: no handler can be set
        previous = None
    failure = []

    def watch():
        while not failure and not done.is_set():
            try:
                failure.append(failures.get(timeout=0.2))
            except queue.Empty:
                continue
        while failure and not done.is_set():  # again each second, until the writing thread has stopped
            if previous is not None:
                os.kill(os.getpid(), signal.SIGUSR1)
            else:
                _thread.interrupt_main()
            done.wait(1.0)

    watcher = threading.Thread(target=watch, daemon=True)
    ffcv.writer.worker_job_indexed_dataset = guarded
    watcher.start()
    try:
        yield
    except (_WorkerFailed, KeyboardInterrupt):
        if not failure:
            raise
        if previous is not None:
            signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # the watcher's repeats: the write has stopped
        done.set()
        for process in multiprocessing.active_children():
            process.terminate()
            process.join()
        shared = getattr(writer, "metadata_sm", None)
        if shared is not None:
            shared.close()
            shared.unlink()
        code, message = failure[0]
        what = "disk full writing" if code == errno.ENOSPC else "a writer process failed writing"
        raise OSError(code or errno.EIO, f"{what} {out_path}: {message}") from None
    finally:
        done.set()
        ffcv.writer.worker_job_indexed_dataset = work
        if previous is not None:
            signal.signal(signal.SIGUSR1, previous)


def beton_labels(beton_path) -> np.ndarray:
    """Labels of every row of a beton (read from its metadata, no decoding)."""
    require_ffcv()
    from ffcv.reader import Reader

    reader = Reader(str(beton_path))
    names = list(reader.handlers.keys())
    return np.asarray(reader.metadata[f"f{names.index('label')}"]).astype(np.int64).copy()


def num_rows(beton_path=None, manifest_path=None) -> int:
    """Number of rows of a beton (preferred) or manifest."""
    if beton_path is not None and ffcv_available() and Path(beton_path).is_file():
        from ffcv.reader import Reader

        return int(Reader(str(beton_path)).num_samples)
    return len(read_csv(manifest_path))
