"""DeepAugment: one augmented copy of a real image through a randomly perturbed EDSR or CAE.

DeepAugment (Hendrycks et al., "The Many Faces of Robustness", code: hendrycks/imagenet-r,
folder DeepAugment/) passes an image through an image-to-image network whose weights and
activations are randomly perturbed (the nets and their perturbations: `edsr.py`, `cae.py`).

The original scripts each write a full distorted copy of ImageNet (one with EDSR, one with CAE),
process one image at a time, draw fresh activation distortions for every image, and re-draw the
perturbed weights with probability 0.05 per image. Here every image draws its own net (EDSR or
CAE, 50/50, so one augmented copy per real image as the paper's Table 3 uses), its own weight
perturbation and its own activation perturbation from its seed. Per-image weights are what makes
an image's output independent of which other images are processed with it (and of their order,
shard or batch size): with per-batch weights, as in the original, re-sharding would change the
data. Because each image has its own weights, images go through the network one at a time (like
the original, whose EDSR/CAE loaders call the net on single images); on CPU, batching a conv net
at these sizes gains little, and batched kernels may pick other blockings and change the last
bits of an image's result depending on its batch-mates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from ..images import to_rgb
from ._random import TAG_DEEPAUGMENT, streams, torch_generator
from .cae import CAE, build_cae, perturb_cae_weights
from .edsr import EDSR, build_edsr, perturb_edsr_weights


@dataclass
class DeepAugmentNets:
    """The two DeepAugment networks (eval mode, on `device`) and their unperturbed weights."""

    edsr: EDSR
    cae: CAE
    edsr_state: dict[str, torch.Tensor]
    cae_state: dict[str, torch.Tensor]
    device: torch.device


# ---------------------------------------------------------------------------------- weights


def _net_state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in net.state_dict(keep_vars=True).items()}


def _unwrap_state(obj, path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a checkpoint object (plain, or under 'state_dict' / 'model'; a
    DataParallel 'module.' prefix is dropped)."""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a state dict (name -> tensor), got {type(obj).__name__}")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}


def _load_into(net: nn.Module, path: Path, what: str, optional: tuple[str, ...] = ()) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"DeepAugment weights not found: {path} (expected {what})")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors have many types
        raise ValueError(f"{path}: cannot read as a torch state dict ({err}); expected {what}") from None
    state = _unwrap_state(obj, path)
    own = net.state_dict()
    missing = [k for k in own if k not in state and k not in optional]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in own.items()
              if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        raise ValueError(f"{path}: does not match {what}: missing keys {missing[:6]}, unexpected keys "
                         f"{unexpected[:6]}, shape mismatches {shapes[:6]}")
    net.load_state_dict({**own, **state})


def load_deepaugment_nets(weights_dir: str | os.PathLike, device: str | torch.device = "cpu") -> DeepAugmentNets:
    """Load `edsr.pt` and `cae.pt` (state dicts) from `weights_dir`.

    Where the pretrained weights come from (DeepAugment loads them from these paths):
    * edsr.pt: EDSR-PyTorch's "EDSR baseline x4", `edsr_baseline_x4-6b446fab.pt`
      (https://cv.snu.ac.kr/research/EDSR/models/, also linked from github.com/sanghyun-son/EDSR-PyTorch);
      DeepAugment's EDSR_distort_imagenet.py reads it as `EDSR_Weights/edsr_baseline_x4.pt`. Its keys
      (sub_mean.*, head.0.*, body.{0..15}.body.{0,2}.*, body.16.*, tail.0.{0,2}.*, tail.1.*,
      add_mean.*) load as they are; copy or rename the file to edsr.pt.
    * cae.pt: the CAE `model_final.state` of github.com/alexandru-dinu/cae (model
      cae_32x32x32_zero_pad_bin), read by CAE_distort_imagenet.py as `CAE_Weights/model_final.state`;
      a state dict with keys e_conv_1.1.weight ... d_up_conv_3.3.bias; rename it to cae.pt.
    A checkpoint wrapping the state dict under 'state_dict' or 'model', or with a 'module.'
    prefix, is accepted. For offline runs, `genrobust.demo.deepaugment_weights` writes randomly
    initialised stand-ins with the same layout.

    Raises FileNotFoundError naming the missing file, ValueError naming the file whose content
    does not match the architecture.
    """
    weights_dir = Path(weights_dir)
    if not weights_dir.is_dir():
        raise FileNotFoundError(f"DeepAugment weights folder not found: {weights_dir} (expected edsr.pt and "
                                "cae.pt: the EDSR baseline x4 and CAE state dicts)")
    device = torch.device(device)
    edsr, cae = build_edsr(), build_cae()
    _load_into(edsr, weights_dir / "edsr.pt", "the EDSR baseline x4 state dict (n_resblocks=16, n_feats=64, "
               "scale=4; EDSR-PyTorch edsr_baseline_x4-6b446fab.pt)",
               optional=("sub_mean.weight", "sub_mean.bias", "add_mean.weight", "add_mean.bias"))
    _load_into(cae, weights_dir / "cae.pt", "the CAE state dict (cae_32x32x32_zero_pad_bin, "
               "model_final.state of alexandru-dinu/cae)")
    edsr.to(device).eval()
    cae.to(device).eval()
    for p in list(edsr.parameters()) + list(cae.parameters()):
        p.requires_grad_(False)
    return DeepAugmentNets(edsr, cae, _net_state(edsr), _net_state(cae), device)


# ----------------------------------------------------------------------------- augmentation


def _as_pil_list(images) -> list[Image.Image]:
    if isinstance(images, (torch.Tensor, np.ndarray)):
        arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else images
        if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
            raise ValueError(f"images: expected a uint8 N,H,W,3 array, got {arr.dtype} {arr.shape}")
        return [Image.fromarray(a) for a in arr]
    return [to_rgb(im) for im in images]


def _to_tensor(img: Image.Image, device) -> torch.Tensor:
    """torchvision ToTensor: 1,3,H,W float in [0, 1]."""
    a = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
    return a.permute(2, 0, 1).unsqueeze(0).contiguous().to(device)


def _to_uint8(y: torch.Tensor) -> np.ndarray:
    """torchvision to_pil_image on a [0, 1] float image: mul(255) then truncating byte()."""
    return y[0].clamp(0, 1).mul(255).byte().permute(1, 2, 0).cpu().numpy()


def _short_side(img: Image.Image, short: int) -> tuple[int, int]:
    w, h = img.size
    return (short, max(1, round(h * short / w))) if w <= h else (max(1, round(w * short / h)), short)


def _resize_to(out: np.ndarray, w0: int, h0: int) -> np.ndarray:
    """`out` resized (bicubic) to w0 x h0 where its size differs."""
    if out.shape[:2] != (h0, w0):
        out = np.asarray(Image.fromarray(out).resize((w0, h0), Image.Resampling.BICUBIC))
    return out


def _edsr_augment(nets: DeepAugmentNets, img: Image.Image, rng_w, rng_a, perturb: bool,
                  input_size: int | None) -> np.ndarray:
    """EDSR_distort_imagenet.py, FolderWithPath.__getitem__: image (resized) * 255 through the
    distorted EDSR x4, clamp(0, 255) / 255, to_pil_image."""
    w0, h0 = img.size
    size = _short_side(img, input_size) if input_size else (max(1, round(w0 / 4)), max(1, round(h0 / 4)))
    x = _to_tensor(img.resize(size, Image.Resampling.BILINEAR), nets.device) * 255
    state, kwargs = nets.edsr_state, {}
    if perturb:
        state = perturb_edsr_weights(state, rng_w, torch_generator(rng_w))
        # FolderWithPath.__getitem__: pre = randint(1, 4), body = randint(1, 5), per image
        kwargs = {"pre_distortion": int(rng_a.integers(1, 5)), "body_distortion": int(rng_a.integers(1, 6)),
                  "rng": rng_a, "generator": torch_generator(rng_a)}
    with torch.no_grad():
        y = torch.func.functional_call(nets.edsr, state, (x,), kwargs)
    return _resize_to(_to_uint8(y.clamp(0, 255) / 255.0), w0, h0)


def _cae_augment(nets: DeepAugmentNets, img: Image.Image, rng_w, rng_a, rng_n, perturb: bool,
                 input_size: int | None) -> np.ndarray:
    """CAE_distort_imagenet.py, FolderWithPath.__getitem__: image in [0, 1] through the distorted
    CAE, clamp(0, 1), to_pil_image. The CAE maps H x W to H x W when both are multiples of 4:
    the input is edge-padded to that (at least 16) and the output cropped back."""
    w0, h0 = img.size
    if input_size:
        img = img.resize(_short_side(img, input_size), Image.Resampling.BILINEAR)
    x = _to_tensor(img, nets.device)
    h, w = x.shape[2:]
    ph, pw = max(16, -(-h // 4) * 4) - h, max(16, -(-w // 4) * 4) - w
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    state, kwargs = nets.cae_state, {"generator": torch_generator(rng_n)}
    if perturb:
        state = perturb_cae_weights(state, rng_w, torch_generator(rng_w))
        # CAE.forward: option = np.random.choice(range(9)), per forward (= per image)
        kwargs.update(option=int(rng_a.integers(9)), rng=rng_a)
    with torch.no_grad():
        y = torch.func.functional_call(nets.cae, state, (x,), kwargs)
    return _resize_to(_to_uint8(y[:, :, :h, :w]), w0, h0)


def deepaugment(images, seeds: Sequence[int], nets: DeepAugmentNets, device=None, *,
                which: str | None = None, perturb: bool = True, edsr_input_size: int | None = None,
                cae_input_size: int | None = None) -> list[np.ndarray]:
    """One DeepAugment copy of each image: uint8 N,H,W,3 tensor/array or list of PIL images (any
    sizes) -> list of uint8 H x W x 3 arrays, each the size of its input.

    Image i depends only on (image i, seeds[i], the weights): the seed picks EDSR or CAE (50/50,
    `which` forces one), the weight perturbation (EDSR get_weights: 3 of 17 options; CAE
    get_weights: 1 of 8) and the activation perturbation (EDSR pre 1..4 / body 1..5; CAE latent
    op 0..8), plus the CAE's binarisation noise, from separate streams. Same seed -> the same
    bytes (on one device and torch build). `perturb=False` runs the unperturbed nets (the CAE
    still binarises stochastically, with the same noise as the perturbed run of that seed).

    Resolution: the original resizes to short side 128 for EDSR (output 512) and 512 for the
    CAE; `edsr_input_size` / `cae_input_size` (short side) resize before the net, and a
    deepaugment strategy passes 128 / 512 unless config says otherwise. None (this function's
    default, fast for tests) works at the image's own scale: EDSR's input is the image at 1/4
    size, so the x4 output has the input's size; the CAE runs at the input size. The output is
    always resized back to the input's size, so a copy keeps its real twin's aspect.
    """
    del device  # the nets carry their device (kept in the signature for the callers)
    pils = _as_pil_list(images)
    seeds = list(seeds)
    if len(seeds) != len(pils):
        raise ValueError(f"deepaugment: {len(pils)} images but {len(seeds)} seeds")
    if which not in (None, "edsr", "cae"):
        raise ValueError(f"deepaugment: which must be None, 'edsr' or 'cae', got {which!r}")
    out = []
    for img, seed in zip(pils, seeds):
        rng_net, rng_w, rng_a, rng_n = streams(seed, TAG_DEEPAUGMENT, 4)
        use_edsr = rng_net.random() < 0.5 if which is None else which == "edsr"
        if use_edsr:
            out.append(_edsr_augment(nets, img, rng_w, rng_a, perturb, edsr_input_size))
        else:
            out.append(_cae_augment(nets, img, rng_w, rng_a, rng_n, perturb, cae_input_size))
    return out
