"""The training recipe: its keys and checks (`Recipe`), and the schedules it defines.

ffcv-imagenet's rn18 configs with the paper's fixes (docs/paper.md, "Training"): the learning rate
is the peak at a total batch of 512, scaled linearly when `scale_lr`; linear warm-up from
`warmup_start_factor * lr` (not 0) to the peak at `lr_peak_epoch`, then linear decay to 0,
evaluated per iteration; progressive resizing from min_res to max_res over a ramp that fits the
run length (`default_ramp`). `batch_size` is the TOTAL batch over all processes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

REFERENCE_BATCH = 512
OPTIONAL = {"generated_bn": "shared"}  # recipe keys a config may leave out, with their defaults

# ffcv-imagenet's rn18 configs: epochs -> (start_ramp, end_ramp)
FFCV_RAMPS = {16: (11, 13), 24: (17, 20), 32: (23, 27), 40: (29, 34), 56: (41, 48), 88: (65, 76)}


@dataclass(frozen=True)
class Recipe:
    """Every hyper-parameter of a training run (config: datasets.<name>.recipe; the schema's
    $defs/recipe lists the same keys, and a test keeps the two equal)."""

    epochs: int
    batch_size: int
    lr: float
    scale_lr: bool
    momentum: float
    weight_decay: float
    label_smoothing: float
    lr_peak_epoch: float
    warmup_start_factor: float
    blurpool: bool
    min_res: int
    max_res: int
    start_ramp: int | None
    end_ramp: int | None
    res_step: int
    val_res: int
    crop_ratio: float
    precision: str
    channels_last: bool
    num_workers: int
    # Optional keys (OPTIONAL): left out of as_dict at their default, so that runs which do not
    # set them keep their identity (and their checkpoints) as the option is added.
    generated_bn: str = "shared"  # 'separate': generated images get their own BatchNorm statistics

    @classmethod
    def from_dict(cls, values: Mapping) -> Recipe:
        """The recipe of a config mapping; a missing or unknown key or an inconsistent value is a
        ValueError naming it."""
        keys = [f.name for f in dataclasses.fields(cls)]
        missing = [k for k in keys if k not in values and k not in OPTIONAL]
        if missing:
            raise ValueError(f"training recipe lacks {missing}")
        unknown = sorted(set(values) - set(keys))
        if unknown:
            raise ValueError(f"training recipe has unknown keys {unknown} (known: {keys})")
        recipe = cls(**{k: values[k] for k in keys if k in values})
        recipe.check()
        return recipe

    def check(self) -> None:
        if self.precision not in ("bf16", "fp16", "fp32"):
            raise ValueError(f"recipe.precision must be bf16, fp16 or fp32, not {self.precision!r}")
        if self.generated_bn not in ("shared", "separate"):
            raise ValueError(f"recipe.generated_bn must be 'shared' or 'separate', not {self.generated_bn!r}")
        if self.min_res > self.max_res:
            raise ValueError(f"recipe.min_res {self.min_res} > recipe.max_res {self.max_res}")

    def as_dict(self) -> dict:
        values = dataclasses.asdict(self)
        return {k: v for k, v in values.items() if not (k in OPTIONAL and v == OPTIONAL[k])}


def peak_lr(recipe: Recipe, total_batch: int) -> float:
    """recipe.lr is the peak learning rate at a total batch of 512; scaled linearly by
    total_batch / 512 when recipe.scale_lr is true."""
    lr = float(recipe.lr)
    if recipe.scale_lr:
        lr *= float(total_batch) / REFERENCE_BATCH
    return lr


def lr_at(epoch: float, recipe: Recipe, peak: float | None = None) -> float:
    """Learning rate at fractional epoch `epoch` (epoch index + iteration / iterations).

    Linear from warmup_start_factor * peak at epoch 0 to `peak` at lr_peak_epoch, then linear
    to 0 at `epochs`. `peak` defaults to recipe.lr (pass peak_lr(...) to scale it).
    """
    peak = float(recipe.lr) if peak is None else float(peak)
    start = float(recipe.warmup_start_factor) * peak
    peak_epoch = float(recipe.lr_peak_epoch)
    epochs = float(recipe.epochs)
    if peak_epoch <= 0:
        return float(np.interp(epoch, [0.0, epochs], [peak, 0.0]))
    return float(np.interp(epoch, [0.0, peak_epoch, epochs], [start, peak, 0.0]))


def default_ramp(epochs: int) -> tuple[int, int]:
    """(start_ramp, end_ramp) of progressive resizing for a run of `epochs` epochs.

    ffcv-imagenet's rn18 table where it has the length; otherwise the ramp's start and end
    as fractions of the run (start/epochs, end/epochs) are interpolated linearly in `epochs`
    between the table's neighbouring lengths (held at the table's first/last fractions
    outside 16..88 epochs), multiplied by `epochs` and rounded; end is capped at the last
    epoch (epochs - 1) and start at end.
    """
    epochs = int(epochs)
    if epochs in FFCV_RAMPS:
        return FFCV_RAMPS[epochs]
    lengths = sorted(FFCV_RAMPS)
    start_frac = np.interp(epochs, lengths, [FFCV_RAMPS[e][0] / e for e in lengths])
    end_frac = np.interp(epochs, lengths, [FFCV_RAMPS[e][1] / e for e in lengths])
    end = min(int(round(end_frac * epochs)), max(epochs - 1, 0))
    start = min(int(round(start_frac * epochs)), end)
    return start, end


def ramp(recipe: Recipe) -> tuple[int, int]:
    """The recipe's (start_ramp, end_ramp), default_ramp(epochs) where either is null."""
    if recipe.start_ramp is None or recipe.end_ramp is None:
        return default_ramp(recipe.epochs)
    return int(recipe.start_ramp), int(recipe.end_ramp)


def resolution_at(epoch: int, recipe: Recipe) -> int:
    """Training resolution of (0-based) epoch `epoch`, as ffcv-imagenet's get_resolution:
    min_res up to start_ramp, max_res from end_ramp, in between linear and rounded to a
    multiple of res_step."""
    min_res, max_res = int(recipe.min_res), int(recipe.max_res)
    step = int(recipe.res_step or 32)
    start, end = ramp(recipe)
    if epoch <= start:
        return min_res
    if epoch >= end:
        return max_res
    res = float(np.interp(epoch, [start, end], [min_res, max_res]))
    return int(np.round(res / step)) * step
