"""The augmentation baselines of the paper's Table 3: DeepAugment and PixMix.

Each produces ONE augmented copy of a real image, fully determined by an integer seed per image
(the caller derives it, e.g. with seeding.derive_seed). No global RNG is touched: every random
draw comes from a numpy Generator / torch.Generator built from that seed.

DeepAugment (Hendrycks et al., "The Many Faces of Robustness", code: hendrycks/imagenet-r,
folder DeepAugment/) passes an image through an image-to-image network whose weights and
activations are randomly perturbed:

* EDSR (super-resolution, x4): `DeepAugment/EDSR_distort_imagenet.py` -- class EDSR (architecture
  with EDSR-PyTorch's `common.py` blocks), its `forward` (the "pre" and "body" activation
  distortions) and `get_weights` (17 weight distortions, 3 applied per draw).
* CAE (compressive autoencoder): `DeepAugment/CAE_Model/cae_32x32x32_zero_pad_bin.py` -- class CAE
  (architecture, the 9 random latent ops in `forward`, stochastic binarisation) and
  `DeepAugment/CAE_distort_imagenet.py` -- `get_weights` (8 weight distortions, 1 per draw).

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

PixMix (Hendrycks et al., "PixMix: Dreamlike Pictures Comprehensively Improve Safety Measures",
code: andyzoujm/pixmix): `pixmix()` and `augment_input()` in `imagenet.py` / `cifar.py`, the
operations and mixings of `pixmix_utils.py`, the mixing-picture preprocessing
(Resize(256) + RandomCrop(224) in `imagenet.py`, Resize(36) + RandomCrop(32) in `cifar.py`).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image, ImageEnhance, ImageOps

# Stream tags mixed into the seed, so that the same integer seed gives unrelated streams in
# DeepAugment and in PixMix.
_TAG_DEEPAUGMENT = 0x44454550  # "DEEP"
_TAG_PIXMIX = 0x5049584D  # "PIXM"

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".tif", ".tiff")


def _streams(seed: int, tag: int, n: int) -> list[np.random.Generator]:
    """`n` independent numpy Generators from (seed, tag)."""
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seeds must be non-negative integers, got {seed}")
    return [np.random.default_rng(s) for s in np.random.SeedSequence([seed, tag]).spawn(n)]


def _torch_generator(rng: np.random.Generator) -> torch.Generator:
    """A CPU torch.Generator seeded from `rng` (random tensors are drawn on CPU and moved to the
    device, so a seed gives the same draws on every device)."""
    return torch.Generator().manual_seed(int(rng.integers(2**63)))


def _rand(shape, gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """torch.rand_like(like) drawn from `gen`, with `shape`."""
    return torch.rand(tuple(shape), generator=gen).to(device=like.device, dtype=like.dtype)


# ============================================================================================
# EDSR: architecture from DeepAugment/EDSR_distort_imagenet.py (class EDSR) with the blocks of
# EDSR-PyTorch's model/common.py (default_conv, MeanShift, ResBlock, Upsampler), which
# DeepAugment imports as EDSR_Model.common. Defaults = the "EDSR baseline x4" that DeepAugment
# loads (n_resblocks=16, n_feats=64, scale=4, res_scale=1, rgb_range=255).
# ============================================================================================


def _default_conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> nn.Conv2d:
    """common.default_conv: 'same' padding."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class MeanShift(nn.Conv2d):
    """common.MeanShift: a fixed 1x1 conv subtracting (sign=-1) or adding the DIV2K RGB mean."""

    def __init__(self, rgb_range: float, rgb_mean=(0.4488, 0.4371, 0.4040), rgb_std=(1.0, 1.0, 1.0),
                 sign: int = -1):
        super().__init__(3, 3, kernel_size=1)
        std = torch.tensor(rgb_std)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1) / std.view(3, 1, 1, 1)
        self.bias.data = sign * rgb_range * torch.tensor(rgb_mean) / std
        for p in self.parameters():
            p.requires_grad = False


class ResBlock(nn.Module):
    """common.ResBlock (no batch norm): conv-act-conv, scaled, plus identity."""

    def __init__(self, n_feats: int, kernel_size: int, res_scale: float = 1.0):
        super().__init__()
        self.body = nn.Sequential(_default_conv(n_feats, n_feats, kernel_size), nn.ReLU(True),
                                  _default_conv(n_feats, n_feats, kernel_size))
        self.res_scale = res_scale

    def forward(self, x):
        res = self.body(x).mul(self.res_scale)
        res += x
        return res


class Upsampler(nn.Sequential):
    """common.Upsampler for scale 2^n (conv to 4*n_feats + PixelShuffle(2), n times) or 3."""

    def __init__(self, scale: int, n_feats: int):
        m: list[nn.Module] = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                m += [_default_conv(n_feats, 4 * n_feats, 3), nn.PixelShuffle(2)]
        elif scale == 3:
            m += [_default_conv(n_feats, 9 * n_feats, 3), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"EDSR upsampler: scale {scale} is not 2^n or 3")
        super().__init__(*m)


class EDSR(nn.Module):
    """EDSR as in DeepAugment/EDSR_distort_imagenet.py; input and output in [0, rgb_range].

    `forward(x, pre_distortion, body_distortion, rng, generator)` reproduces the original's
    activation distortions (its `pre_distortions` / `body_distortions` sets hold one number each:
    pre in 1..4, body in 1..5, where pre 4 and body 5 have no branch, i.e. no distortion); 0 means
    none. Python's `random` and torch's global RNG of the original are replaced by `rng` (numpy)
    and `generator` (torch, CPU).
    """

    def __init__(self, n_resblocks: int = 16, n_feats: int = 64, scale: int = 4, res_scale: float = 1.0,
                 rgb_range: float = 255, n_colors: int = 3):
        super().__init__()
        self.n_feats, self.scale = n_feats, scale
        self.sub_mean = MeanShift(rgb_range)
        self.add_mean = MeanShift(rgb_range, sign=1)
        self.head = nn.Sequential(_default_conv(n_colors, n_feats, 3))
        body: list[nn.Module] = [ResBlock(n_feats, 3, res_scale) for _ in range(n_resblocks)]
        body.append(_default_conv(n_feats, n_feats, 3))
        self.body = nn.Sequential(*body)
        self.tail = nn.Sequential(Upsampler(scale, n_feats), _default_conv(n_feats, n_colors, 3))

    def forward(self, x: torch.Tensor, pre_distortion: int = 0, body_distortion: int = 0,
                rng: np.random.Generator | None = None, generator: torch.Generator | None = None):
        if (pre_distortion or body_distortion) and (rng is None or generator is None):
            raise ValueError("EDSR distortions need rng and generator")
        x = self.sub_mean(x)
        x = self.head(x)

        # --- pre-distortions (EDSR_distort_imagenet.py, EDSR.forward) ---
        if pre_distortion == 1:
            # Original: `x[:, c1], x[:, c2] = x[:, c2], x[:, c1]` five times. On torch views this
            # tuple "swap" copies channel c2 into c1 and leaves c2 as it is (the right-hand views
            # alias x); we reproduce what the original computed, not what it meant.
            x = x.clone()
            for _ in range(5):
                c1, c2 = int(rng.integers(0, self.n_feats)), int(rng.integers(0, self.n_feats))
                x[:, c1] = x[:, c2]
        elif pre_distortion == 2:
            x = x * torch.round(_rand(x.shape, generator, x) + 0.45)  # random 1/0 mask, P(1)=0.55
        elif pre_distortion == 3:
            x = x * ((torch.round(_rand(x.shape, generator, x) + 0.475) * 2) - 1)  # random +-1

        # --- body distortions ---
        if body_distortion == 1:
            res = self.body[5:](-self.body[:5](x))
        elif body_distortion == 2:
            act = F.relu if int(rng.integers(0, 3)) == 1 else F.gelu
            res = self.body[5:](act(self.body[:5](x)))
        elif body_distortion == 3:
            axes = [1, 2] if int(rng.integers(0, 3)) == 1 else [1, 3]
            res = self.body[5:](torch.flip(self.body[:5](x), axes))
        elif body_distortion == 4:
            # Original: `for i in range(len(self.body)): if i not in to_skip: res = self.body[i](x)`
            # -- every layer is applied to x, so res is the last non-skipped layer applied to x.
            # Computing only that layer gives the same result.
            to_skip = {int(rng.integers(2, 17)) for _ in range(3)}
            last = max(i for i in range(len(self.body)) if i not in to_skip)
            res = self.body[last](x)
        else:
            res = self.body(x)
        res = res + x
        x = self.tail(res)
        return self.add_mean(x)


def build_edsr() -> EDSR:
    """EDSR baseline x4 as DeepAugment loads it (16 res-blocks, 64 features, x4, res_scale 1)."""
    return EDSR(n_resblocks=16, n_feats=64, scale=4, res_scale=1.0, rgb_range=255, n_colors=3)


def perturb_edsr_weights(state: Mapping[str, torch.Tensor], rng: np.random.Generator,
                         gen: torch.Generator) -> dict[str, torch.Tensor]:
    """EDSR_distort_imagenet.py, get_weights(): 3 options drawn from 0..16, applied in turn.

    Returns a new dict; tensors of `state` are never modified. Indices, ranges and constants
    are the original's (e.g. np.arange(0, 10, 3) -> blocks 0, 3, 6, 9; option 6's
    `2*torch.rand_like(w-1)` is 2*U(0,1), kept as such).
    """
    w = dict(state)

    def k(i, j, kind="weight"):
        return f"body.{int(i)}.body.{int(j)}.{kind}"

    def rand_like(t):
        return _rand(t.shape, gen, t)

    for option in rng.integers(0, 17, size=3):
        option = int(option)
        if option == 0:  # reverse the filter order of both convs of a block (weights and biases)
            i = rng.choice(np.arange(0, 10, 3))
            for name in (k(i, 0), k(i, 0, "bias"), k(i, 2), k(i, 2, "bias")):
                w[name] = torch.flip(w[name], (0,))
        elif option == 1:  # negate the first conv of a block
            i = rng.choice(np.arange(1, 10, 3))
            w[k(i, 0)], w[k(i, 0, "bias")] = -w[k(i, 0)], -w[k(i, 0, "bias")]
        elif option == 2:  # zero the first conv of a block
            i = rng.choice(np.arange(0, 10, 3))
            w[k(i, 0)], w[k(i, 0, "bias")] = 0 * w[k(i, 0)], 0 * w[k(i, 0, "bias")]
        elif option == 3:
            i = rng.choice(np.arange(0, 10, 3))
            w[k(i, 0)] = -F.gelu(w[k(i, 0)])
            w[k(i, 2)] = -F.gelu(w[k(i, 2)])
        elif option in (4, 5):  # multiply every 3x3 kernel by a Laplacian / high-pass kernel
            i = rng.choice(np.arange(0, 10, 3))
            kern = ([[0, 1, 0], [1, -4.0, 1], [0, 1, 0]] if option == 4
                    else [[-1, -1, -1], [-1, 8.0, -1], [-1, -1, -1]])
            t = w[k(i, 0)]
            w[k(i, 0)] = t * torch.tensor(kern, dtype=t.dtype, device=t.device).view(1, 1, 3, 3)
        elif option == 6:
            i = rng.choice(np.arange(0, 10, 3))
            t = w[k(i, 2)]
            w[k(i, 2)] = t * (1 + 2 * float(np.float32(rng.uniform())) * (2 * rand_like(t)))
        elif option == 7:
            i = rng.choice(np.arange(0, 10, 3))
            w[k(i, 0)] = torch.flip(w[k(i, 0)], (-1,))
            w[k(i, 2)] = -1 * w[k(i, 2)]
        elif option == 8:  # convolve the kernels with random +-1 shift kernels
            i = rng.choice(np.arange(1, 13, 4))
            t = w[k(i, 0)]
            z = torch.zeros_like(t)
            for j in range(z.size(0)):
                sx, sy = rng.integers(3, size=2)
                z[:, j, int(sx), int(sy)] = float(rng.choice([1.0, -1.0]))
            w[k(i, 0)] = F.conv2d(t, z, padding=1)
        elif option == 9:  # convolve the kernels with a random kernel
            i = rng.choice(np.arange(0, 10, 3))
            t = w[k(i, 0)]
            z = (2 * rand_like(t) * float(np.float32(rng.uniform())) - 1) / 6.0
            w[k(i, 0)] = F.conv2d(t, z, padding=1)
        elif option == 10:  # convolve with sparse Dirichlet(0.1) kernels
            i = rng.choice(np.arange(1, 12, 4))
            t = w[k(i, 2)]
            c = t.size(0)
            z = torch.from_numpy(rng.dirichlet([0.1] * 9, (c, c))).to(t.device, t.dtype).view(c, c, 3, 3)
            w[k(i, 2)] = F.conv2d(t, z, padding=1)
        elif option == 11:  # additive uniform noise on a second conv
            i = int(rng.integers(15))
            t = w[k(i, 2)]
            w[k(i, 2)] = t + (rand_like(t) - 0.5) * 1.0
        elif option == 12:  # rotate kernels (spatially or across channels) of 5 convs
            pairs = [(int(rng.integers(15)), int(rng.choice([0, 2]))) for _ in range(5)]
            for i, j in pairs:
                rot = int(rng.integers(1, 4))
                dims = (2, 3) if int(rng.integers(0, 2)) == 0 else (0, 1)
                w[k(i, j)] = torch.rot90(w[k(i, j)], k=rot, dims=dims)
        elif option in (13, 14):  # random +-1 (13) or 1/0 (14) mask on 5 first convs
            for i in [int(rng.integers(15)) for _ in range(5)]:
                t = w[k(i, 0)]
                mask = torch.round(rand_like(t))
                w[k(i, 0)] = t * (mask * 2 - 1 if option == 13 else mask)
        elif option == 15:  # negate 32 random filters (with repeats) of 5 first convs
            for i in [int(rng.integers(15)) for _ in range(5)]:
                # `w[filters] *= -1` with repeated indices negates each distinct filter once
                idx = torch.as_tensor(np.unique(rng.integers(64, size=32)))
                t = w[k(i, 0)].clone()
                t[idx] = -t[idx]
                w[k(i, 0)] = t
        elif option == 16:  # keep only the max tap of each 3x3 kernel in 5 convs
            pairs = [(int(rng.integers(15)), int(rng.choice([0, 2]))) for _ in range(5)]
            for i, j in pairs:
                t = w[k(i, j)]
                flat = t.reshape(t.shape[0], t.shape[1], -1)
                top = torch.topk(flat, k=1)
                w[k(i, j)] = torch.zeros_like(flat).scatter(2, top.indices, top.values).reshape(t.shape)
        else:  # pragma: no cover
            raise AssertionError(option)
    return w


# ============================================================================================
# CAE: DeepAugment/CAE_Model/cae_32x32x32_zero_pad_bin.py (class CAE), the 32x32x32-bit
# compressive autoencoder (alexandru-dinu/cae) with zero padding and stochastic binarisation.
# Input and output in [0, 1] (tanh output, clamped by the caller as in CAE_distort_imagenet.py).
# ============================================================================================


def _enc_block() -> nn.Sequential:
    return nn.Sequential(nn.ZeroPad2d((1, 1, 1, 1)), nn.Conv2d(128, 128, 3, 1), nn.LeakyReLU(),
                         nn.ZeroPad2d((1, 1, 1, 1)), nn.Conv2d(128, 128, 3, 1))


class CAE(nn.Module):
    """The CAE of DeepAugment. `forward(x, option, rng, generator)`: `option` in 0..8 selects the
    original's random latent op (None: no op); `generator` drives the stochastic binarisation
    (and the ops' random tensors), `rng` the ops' random choices."""

    def __init__(self):
        super().__init__()
        # encoder
        self.e_conv_1 = nn.Sequential(nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(3, 64, 5, 2), nn.LeakyReLU())
        self.e_conv_2 = nn.Sequential(nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(64, 128, 5, 2), nn.LeakyReLU())
        self.e_block_1, self.e_block_2, self.e_block_3 = _enc_block(), _enc_block(), _enc_block()
        self.e_conv_3 = nn.Sequential(nn.Conv2d(128, 32, 5, 1, padding=2), nn.Tanh())
        # decoder
        self.d_up_conv_1 = nn.Sequential(nn.Conv2d(32, 64, 3, 1), nn.LeakyReLU(), nn.ZeroPad2d((1, 1, 1, 1)),
                                         nn.ConvTranspose2d(64, 128, 2, 2))
        self.d_block_1, self.d_block_2, self.d_block_3 = _enc_block(), _enc_block(), _enc_block()
        self.d_up_conv_2 = nn.Sequential(nn.Conv2d(128, 32, 3, 1), nn.LeakyReLU(), nn.ZeroPad2d((1, 1, 1, 1)),
                                         nn.ConvTranspose2d(32, 256, 2, 2))
        self.d_up_conv_3 = nn.Sequential(nn.Conv2d(256, 16, 3, 1), nn.LeakyReLU(), nn.ReflectionPad2d((2, 2, 2, 2)),
                                         nn.Conv2d(16, 3, 3, 1), nn.Tanh())

    def encode(self, x):
        ec1 = self.e_conv_1(x)
        ec2 = self.e_conv_2(ec1)
        eblock1 = self.e_block_1(ec2) + ec2
        eblock2 = self.e_block_2(eblock1) + eblock1
        eblock3 = self.e_block_3(eblock2) + eblock2
        return self.e_conv_3(eblock3)  # in [-1, 1]

    def forward(self, x: torch.Tensor, option: int | None = None, rng: np.random.Generator | None = None,
                generator: torch.Generator | None = None):
        if option is not None and rng is None:
            raise ValueError("CAE latent ops need rng")
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        ec3 = self.encode(x)
        if option is not None:
            ec3 = _cae_latent_op(ec3, option, rng, generator)

        # stochastic binarisation (as the original: eps chosen so that ec3 + eps is +-1)
        rand = _rand(ec3.shape, generator, ec3)
        prob = (1 + ec3) / 2
        eps = torch.where(rand <= prob, 1 - ec3, -ec3 - 1)
        encoded = 0.5 * (ec3 + eps + 1)  # (-1|1) -> (0|1)
        if option == 0:
            # original: `encoded * (3 + 2*np.float32(U) * (2*torch.rand_like(encoded-1)))`
            u = float(np.float32(rng.uniform()))
            encoded = encoded * (3 + 2 * u * (2 * _rand(encoded.shape, generator, encoded)))
        return self.decode(encoded)

    def decode(self, encoded):
        y = encoded * 2.0 - 1
        uc1 = self.d_up_conv_1(y)
        dblock1 = self.d_block_1(uc1) + uc1
        dblock2 = self.d_block_2(dblock1) + dblock1
        dblock3 = self.d_block_3(dblock2) + dblock2
        uc2 = self.d_up_conv_2(dblock3)
        return self.d_up_conv_3(uc2)


def _cae_latent_op(ec3: torch.Tensor, option: int, rng: np.random.Generator, gen: torch.Generator) -> torch.Tensor:
    """The random op on the latent code in CAE.forward (cae_32x32x32_zero_pad_bin.py), options
    1..8 (option 0 acts after binarisation, in CAE.forward). Written for one image (N=1), as the
    original runs; dims count the batch axis as the original does."""
    h, w = ec3.shape[2], ec3.shape[3]
    c = ec3.shape[1]
    if option == 1:  # zero some latent positions
        ec3 = ec3 * (_rand((h, w), gen, ec3) > 0.2).to(ec3.dtype)
    elif option == 2:  # negate some latent positions
        ec3 = ec3 * ((_rand((h, w), gen, ec3) > 0.1).to(ec3.dtype) * 2 - 1)
    elif option == 3:  # permute the first 10 channels
        perm = np.concatenate([rng.permutation(10), np.arange(10, c)])
        ec3 = ec3[:, torch.as_tensor(perm)]
    elif option in (4, 5):  # flip 5 random channels (4) or all channels (5) along 2 of (N, H, W)
        dims = [int(d) for d in rng.permutation(3)[:2]]
        ec3 = ec3.clone()
        if option == 4:
            for _ in range(5):
                f = int(rng.integers(c))
                ec3[:, f] = torch.flip(ec3[:, f], dims=dims)
        else:  # the original swaps the dims order half-way, which torch.flip ignores
            for i in range(c):
                ec3[:, i] = torch.flip(ec3[:, i], dims=dims)
    elif option in (6, 7, 8):  # convolve the code with a (perturbed) identity / shift kernel
        z = torch.zeros(c, c, 3, 3, dtype=ec3.dtype)
        if option == 6:
            idx = torch.arange(c)
            z[idx, idx, 1, 1] = 1
            z = z + (torch.rand(z.shape, generator=gen, dtype=z.dtype) - 0.5) * 0.2
        elif option == 7:
            for j in range(c):
                z[j, j, 1, 1] = 1
                if rng.random() < 0.5:
                    r = int(rng.integers(0, c))
                    a, b = int(rng.integers(-1, 2)), int(rng.integers(-1, 2))  # -1 indexes the last tap
                    z[j, r, a, b] = 1
        else:
            sx, sy = (int(v) for v in rng.integers(3, size=2))
            for j in range(c):
                if rng.random() < 0.2:
                    sx, sy = (int(v) for v in rng.integers(3, size=2))
                z[j, j, sx, sy] = 1
        ec3 = F.conv2d(ec3, z.to(ec3.device), padding=1)
    elif option != 0:
        raise ValueError(f"CAE latent option {option} not in 0..8")
    return ec3


def build_cae() -> CAE:
    """The CAE of DeepAugment (cae_32x32x32_zero_pad_bin)."""
    return CAE()


# CAE_distort_imagenet.py, get_weights(): the 21 conv layers in order (layer i has keys 2i, 2i+1).
CAE_WEIGHT_KEYS = [
    "e_conv_1.1", "e_conv_2.1", "e_block_1.1", "e_block_1.4", "e_block_2.1", "e_block_2.4",
    "e_block_3.1", "e_block_3.4", "e_conv_3.0", "d_up_conv_1.0", "d_up_conv_1.3", "d_block_1.1",
    "d_block_1.4", "d_block_2.1", "d_block_2.4", "d_block_3.1", "d_block_3.4", "d_up_conv_2.0",
    "d_up_conv_2.3", "d_up_conv_3.0", "d_up_conv_3.3",
]
_CAE_NUM_LAYERS = len(CAE_WEIGHT_KEYS)  # 21
_CAE_OPTION_LAYERS = {0: range(11, _CAE_NUM_LAYERS - 5), 1: range(8, _CAE_NUM_LAYERS - 7),
                      2: range(8, _CAE_NUM_LAYERS - 7), 3: range(10, _CAE_NUM_LAYERS - 7),
                      4: range(8, _CAE_NUM_LAYERS - 7), 5: range(8, _CAE_NUM_LAYERS - 7),
                      6: range(8, _CAE_NUM_LAYERS - 7), 7: range(8, _CAE_NUM_LAYERS - 7)}
_CAE_NUM_DISTORTIONS = 8  # the original samples from range(8): its option 8 is never drawn


def perturb_cae_weights(state: Mapping[str, torch.Tensor], rng: np.random.Generator,
                        gen: torch.Generator) -> dict[str, torch.Tensor]:
    """CAE_distort_imagenet.py, get_weights(): one option of 0..7 on layers i (and j).

    Kept as the original ran it: `bias_j` names layer j's *weight* (so option 0 flips weight j
    twice, i.e. leaves it alone), repeated random filter indices are processed repeatedly
    (options 1-3), option 4's `4*torch.rand_like(w-1)` is 4*U(0,1). Returns a new dict.
    """
    w = dict(state)
    option = int(rng.integers(_CAE_NUM_DISTORTIONS))
    layers = np.asarray(_CAE_OPTION_LAYERS[option])
    i, j = int(rng.choice(layers)), int(rng.choice(layers))
    weight_i, bias_i = f"{CAE_WEIGHT_KEYS[i]}.weight", f"{CAE_WEIGHT_KEYS[i]}.bias"
    weight_j = bias_j = f"{CAE_WEIGHT_KEYS[j]}.weight"

    def rand_like(t):
        return _rand(t.shape, gen, t)

    if option == 0:
        for name in (weight_i, bias_i, weight_j, bias_j):
            w[name] = torch.flip(w[name], (0,))
    elif option in (1, 2, 3):
        n = 12 if option == 1 else 25
        wi, bi = w[weight_i].clone(), w[bias_i].clone()
        for kk in [int(rng.integers(wi.size(0))) for _ in range(n)]:
            if option == 1:
                wi[kk], bi[kk] = -wi[kk], -bi[kk]
            elif option == 2:
                wi[kk], bi[kk] = 0 * wi[kk], 0 * bi[kk]
            else:
                wi[kk], bi[kk] = -F.gelu(wi[kk]), -F.gelu(bi[kk])
        w[weight_i], w[bias_i] = wi, bi
    elif option == 4:
        for name in (weight_i, weight_j):
            t = w[name]
            w[name] = t * (1 + 2 * float(np.float32(rng.uniform())) * (4 * rand_like(t)))
    elif option == 5:
        t = w[weight_i]
        mask = torch.round(rand_like(t)) if rng.random() < 0.5 else torch.round(rand_like(t)) * 2 - 1
        w[weight_i] = t * mask
    elif option == 6:
        w[weight_i] = torch.rot90(w[weight_i], k=int(rng.integers(1, 4)), dims=(2, 3))
    elif option == 7:
        t = w[weight_i].clone()
        out_filters = t.shape[0]
        idx = torch.as_tensor(np.unique(rng.integers(out_filters, size=out_filters // 5)))
        t[idx] = t[idx] * -1.0
        w[weight_i] = t
    return w


# ============================================================================================
# Weights, and the augmentation itself
# ============================================================================================


@dataclass
class DeepAugmentNets:
    """The two DeepAugment networks (eval mode, on `device`) and their unperturbed weights."""

    edsr: EDSR
    cae: CAE
    edsr_state: dict[str, torch.Tensor]
    cae_state: dict[str, torch.Tensor]
    device: torch.device


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
    prefix, is accepted. For offline runs, `write_random_deepaugment_weights` writes randomly
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


def _random_init(net: nn.Module, gen: torch.Generator) -> None:
    """PyTorch's default conv init (kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)), same for the
    bias) drawn from `gen`; MeanShift keeps its fixed weights."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and not isinstance(m, MeanShift):
                # torch's fan_in: size(1) x kernel (for ConvTranspose2d, whose weight is
                # (in, out, k, k), that is its out channels, as torch.nn.init computes it)
                fan_in = m.weight.size(1) * m.weight[0, 0].numel()
                bound = 1 / math.sqrt(fan_in)
                m.weight.uniform_(-bound, bound, generator=gen)
                if m.bias is not None:
                    m.bias.uniform_(-bound, bound, generator=gen)


def write_random_deepaugment_weights(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Randomly initialised EDSR and CAE state dicts as out_dir/edsr.pt and out_dir/cae.pt (each
    written atomically): stand-ins for the pretrained weights in the offline demo and tests."""
    from .io import atomic_path

    out_dir = Path(out_dir)
    gen = torch.Generator().manual_seed(int(seed))
    for name, net in (("edsr.pt", build_edsr()), ("cae.pt", build_cae())):
        _random_init(net, gen)
        with atomic_path(out_dir / name) as tmp:
            torch.save(net.state_dict(), tmp)
    return out_dir


def _as_pil_list(images) -> list[Image.Image]:
    if isinstance(images, (torch.Tensor, np.ndarray)):
        arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else images
        if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
            raise ValueError(f"images: expected a uint8 N,H,W,3 array, got {arr.dtype} {arr.shape}")
        return [Image.fromarray(a) for a in arr]
    return [im if im.mode == "RGB" else im.convert("RGB") for im in images]


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


def _edsr_augment(nets: DeepAugmentNets, img: Image.Image, rng_w, rng_a, perturb: bool,
                  input_size: int | None) -> np.ndarray:
    """EDSR_distort_imagenet.py, FolderWithPath.__getitem__: image (resized) * 255 through the
    distorted EDSR x4, clamp(0, 255) / 255, to_pil_image."""
    w0, h0 = img.size
    size = _short_side(img, input_size) if input_size else (max(1, round(w0 / 4)), max(1, round(h0 / 4)))
    x = _to_tensor(img.resize(size, Image.Resampling.BILINEAR), nets.device) * 255
    state, kwargs = nets.edsr_state, {}
    if perturb:
        state = perturb_edsr_weights(state, rng_w, _torch_generator(rng_w))
        # FolderWithPath.__getitem__: pre = randint(1, 4), body = randint(1, 5), per image
        kwargs = {"pre_distortion": int(rng_a.integers(1, 5)), "body_distortion": int(rng_a.integers(1, 6)),
                  "rng": rng_a, "generator": _torch_generator(rng_a)}
    with torch.no_grad():
        y = torch.func.functional_call(nets.edsr, state, (x,), kwargs)
    out = _to_uint8(y.clamp(0, 255) / 255.0)
    if out.shape[:2] != (h0, w0):
        out = np.asarray(Image.fromarray(out).resize((w0, h0), Image.Resampling.BICUBIC))
    return out


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
    state, kwargs = nets.cae_state, {"generator": _torch_generator(rng_n)}
    if perturb:
        state = perturb_cae_weights(state, rng_w, _torch_generator(rng_w))
        # CAE.forward: option = np.random.choice(range(9)), per forward (= per image)
        kwargs.update(option=int(rng_a.integers(9)), rng=rng_a)
    with torch.no_grad():
        y = torch.func.functional_call(nets.cae, state, (x,), kwargs)
    out = _to_uint8(y[:, :, :h, :w])
    if out.shape[:2] != (h0, w0):
        out = np.asarray(Image.fromarray(out).resize((w0, h0), Image.Resampling.BICUBIC))
    return out


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
    CAE. By default we work at the image's own scale: EDSR's input is the image at 1/4 size, so
    the x4 output has the input's size; the CAE runs at the input size. `edsr_input_size` /
    `cae_input_size` (short side; 128 / 512 reproduce the original) resize before the net; the
    output is always resized back to the input's size.
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
        rng_net, rng_w, rng_a, rng_n = _streams(seed, _TAG_DEEPAUGMENT, 4)
        use_edsr = rng_net.random() < 0.5 if which is None else which == "edsr"
        if use_edsr:
            out.append(_edsr_augment(nets, img, rng_w, rng_a, perturb, edsr_input_size))
        else:
            out.append(_cae_augment(nets, img, rng_w, rng_a, rng_n, perturb, cae_input_size))
    return out


# ============================================================================================
# PixMix: andyzoujm/pixmix, pixmix_utils.py (operations, mixings) and imagenet.py / cifar.py
# (pixmix, augment_input, mixing-set preprocessing). np.random is replaced by `rng`.
# ============================================================================================


def _int_parameter(level: float, maxval: float) -> int:
    return int(level * maxval / 10)


def _float_parameter(level: float, maxval: float) -> float:
    return float(level) * maxval / 10.0


def _sample_level(rng, n):
    return rng.uniform(low=0.1, high=n)


def _autocontrast(img, _, rng):
    return ImageOps.autocontrast(img)


def _equalize(img, _, rng):
    return ImageOps.equalize(img)


def _posterize(img, level, rng):
    return ImageOps.posterize(img, 4 - _int_parameter(_sample_level(rng, level), 4))


def _rotate(img, level, rng):
    degrees = _int_parameter(_sample_level(rng, level), 30)
    if rng.uniform() > 0.5:
        degrees = -degrees
    return img.rotate(degrees, resample=Image.Resampling.BILINEAR)


def _solarize(img, level, rng):
    return ImageOps.solarize(img, 256 - _int_parameter(_sample_level(rng, level), 256))


def _affine(img, coeffs):
    # the original passes (IMAGE_SIZE, IMAGE_SIZE): square images of the training size; we use
    # the image's own size
    return img.transform(img.size, Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)


def _shear_x(img, level, rng):
    level = _float_parameter(_sample_level(rng, level), 0.3)
    if rng.uniform() > 0.5:
        level = -level
    return _affine(img, (1, level, 0, 0, 1, 0))


def _shear_y(img, level, rng):
    level = _float_parameter(_sample_level(rng, level), 0.3)
    if rng.uniform() > 0.5:
        level = -level
    return _affine(img, (1, 0, 0, level, 1, 0))


def _translate_x(img, level, rng):
    level = _int_parameter(_sample_level(rng, level), img.size[0] / 3)  # IMAGE_SIZE / 3
    if rng.random() > 0.5:
        level = -level
    return _affine(img, (1, 0, level, 0, 1, 0))


def _translate_y(img, level, rng):
    level = _int_parameter(_sample_level(rng, level), img.size[1] / 3)
    if rng.random() > 0.5:
        level = -level
    return _affine(img, (1, 0, 0, 0, 1, level))


def _enhance(cls):
    def op(img, level, rng):
        return cls(img).enhance(_float_parameter(_sample_level(rng, level), 1.8) + 0.1)
    op.__name__ = f"_{cls.__name__.lower()}"
    return op


_color, _contrast = _enhance(ImageEnhance.Color), _enhance(ImageEnhance.Contrast)
_brightness, _sharpness = _enhance(ImageEnhance.Brightness), _enhance(ImageEnhance.Sharpness)

# pixmix_utils.augmentations / augmentations_all (color..sharpness overlap with ImageNet-C)
AUGMENTATIONS = [_autocontrast, _equalize, _posterize, _rotate, _solarize, _shear_x, _shear_y,
                 _translate_x, _translate_y]
AUGMENTATIONS_ALL = AUGMENTATIONS + [_color, _contrast, _brightness, _sharpness]


def _get_ab(beta, rng):
    """pixmix_utils.get_ab."""
    if rng.random() < 0.5:
        a = np.float32(rng.beta(beta, 1))
        b = np.float32(rng.beta(1, beta))
    else:
        a = 1 + np.float32(rng.beta(1, beta))
        b = -np.float32(rng.beta(1, beta))
    return a, b


def _add(img1, img2, beta, rng):
    """pixmix_utils.add: affine mix in [-1, 1]."""
    a, b = _get_ab(beta, rng)
    img1, img2 = img1 * 2 - 1, img2 * 2 - 1
    out = a * img1 + b * img2
    return (out + 1) / 2


def _multiply(img1, img2, beta, rng):
    """pixmix_utils.multiply: geometric mix in [0, 2]."""
    a, b = _get_ab(beta, rng)
    img1, img2 = img1 * 2, img2 * 2
    out = (img1 ** a) * (np.clip(img2, np.float32(1e-37), None) ** b)
    return out / 2


MIXINGS = [_add, _multiply]


def _tensorize(img: Image.Image) -> np.ndarray:
    """transforms.ToTensor, kept H,W,C: float32 in [0, 1]."""
    return np.asarray(img, dtype=np.float32) / np.float32(255)


def _prepare_mixing_picture(pic: Image.Image, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """The original's mixing-set transform, Resize(256) + RandomCrop(224) for 224 px ImageNet
    crops (imagenet.py; cifar.py: Resize(36) + RandomCrop(32)): resize the short side to
    round(max(W, H) * 256 / 224), then crop W x H at a random offset."""
    pic = pic if pic.mode == "RGB" else pic.convert("RGB")
    w, h = size
    short = max(1, round(max(w, h) * 256 / 224))
    pw, ph = pic.size
    new = (short, max(short, round(ph * short / pw))) if pw <= ph else (max(short, round(pw * short / ph)), short)
    pic = pic.resize(new, Image.Resampling.BILINEAR)
    x0 = int(rng.integers(0, new[0] - w + 1))
    y0 = int(rng.integers(0, new[1] - h + 1))
    return pic.crop((x0, y0, x0 + w, y0 + h))


def _open_picture(p) -> Image.Image:
    if isinstance(p, Image.Image):
        return p
    with Image.open(p) as im:
        return im.convert("RGB")


def pixmix(image: Image.Image, mixing_pictures: Sequence | Callable[[int], Image.Image], seed: int,
           k: int = 4, beta: float = 3, aug_severity: int = 3, all_ops: bool = True) -> Image.Image:
    """One PixMix copy of `image` (uint8 RGB PIL image of the same size).

    Follows pixmix() of andyzoujm/pixmix imagenet.py / cifar.py: start from the image or an
    augmented copy (coin flip), then for rng.integers(k + 1) rounds mix in either a fresh
    augmented copy of the image or the mixing picture (coin flip), by pixmix_utils.add or
    multiply (coin flip) with Beta(beta)-drawn weights, clipping to [0, 1] after each round.
    One mixing picture per image (as PixMixDataset.__getitem__), preprocessed as the original's
    mixing-set transform at the image's size (see _prepare_mixing_picture).

    `mixing_pictures`: a sequence of PIL images or image paths (one picked with the seed), or a
    callable mapping an integer drawn from the seed to a PIL image. The picture is only loaded
    when a round uses it. `seed` alone fixes the result. Defaults k=4, beta=3, aug_severity=3
    are cifar.py's; imagenet.py's are k=4, beta=4, aug_severity=1 with all_ops off.
    The original returns the normalised float tensor; we round the [0, 1] result to uint8.
    """
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    orig = image if image.mode == "RGB" else image.convert("RGB")
    rng, rng_pic = _streams(seed, _TAG_PIXMIX, 2)
    pick = int(rng_pic.integers(2**63))
    aug_list = AUGMENTATIONS_ALL if all_ops else AUGMENTATIONS
    cache: list[np.ndarray] = []

    def mixing_pic() -> np.ndarray:
        if not cache:
            if callable(mixing_pictures):
                pic = mixing_pictures(pick)
            else:
                if len(mixing_pictures) == 0:
                    raise ValueError("pixmix: the mixing set is empty")
                pic = _open_picture(mixing_pictures[pick % len(mixing_pictures)])
            cache.append(_tensorize(_prepare_mixing_picture(pic, orig.size, rng_pic)))
        return cache[0]

    def augment_input(img):  # imagenet.py augment_input
        op = aug_list[int(rng.integers(len(aug_list)))]
        return op(img.copy(), aug_severity, rng)

    mixed = _tensorize(augment_input(orig)) if rng.random() < 0.5 else _tensorize(orig)
    for _ in range(int(rng.integers(k + 1))):
        aug_image_copy = _tensorize(augment_input(orig)) if rng.random() < 0.5 else mixing_pic()
        mixed_op = MIXINGS[int(rng.integers(len(MIXINGS)))]
        mixed = np.clip(mixed_op(mixed, aug_image_copy, beta, rng), 0, 1)
    return Image.fromarray(np.rint(np.asarray(mixed, dtype=np.float32) * 255).astype(np.uint8), "RGB")


def index_mixing_set(folder: str | os.PathLike) -> list[str]:
    """Sorted paths of the images under `folder` (recursively: the original's mixing set is an
    ImageFolder with class sub-folders)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"PixMix mixing set folder not found: {folder}")
    paths: list[str] = []
    stack = [str(folder)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir():
                    stack.append(e.path)
                elif e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS) and not e.name.startswith("."):
                    paths.append(e.path)
    if not paths:
        raise ValueError(f"PixMix mixing set {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return sorted(paths)


# --------------------------------------------------------------------------------------------
# Procedural fractal mixing pictures (the PixMix fractal / feature-visualisation set cannot be
# downloaded offline): random iterated-function-system fractals (as in FractalDB) and Julia sets.
# --------------------------------------------------------------------------------------------


def _palette(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Cosine colour palette (Inigo Quilez) of t in [0, 1]: H,W -> H,W,3 in [0, 1]."""
    a, b = rng.uniform(0.3, 0.7, 3), rng.uniform(0.2, 0.5, 3)
    c, d = rng.uniform(0.5, 2.0, 3), rng.uniform(0, 1, 3)
    return np.clip(a + b * np.cos(2 * np.pi * (c * t[..., None] + d)), 0, 1)


def _ifs_fractal(rng: np.random.Generator, size: int) -> np.ndarray:
    """Chaos-game rendering of 2-4 random contractive affine maps, coloured by log density."""
    n_maps = int(rng.integers(2, 5))
    for _ in range(100):  # reject systems whose maps shrink area so much the fractal is dust
        mats = rng.uniform(-1, 1, (n_maps, 2, 2))
        norms = np.maximum(np.linalg.norm(mats, 2, axis=(1, 2)), 1e-6)
        mats *= (rng.uniform(0.4, 0.9, n_maps) / norms)[:, None, None]
        dets = np.abs(np.linalg.det(mats))
        if 0.5 <= dets.sum() <= 1.2:
            break
    shifts = rng.uniform(-1, 1, (n_maps, 2))
    probs = (dets + 1e-3) / (dets + 1e-3).sum()
    pts = rng.uniform(-1, 1, (8192, 2))
    cloud = []
    for it in range(40):
        idx = rng.choice(n_maps, size=len(pts), p=probs)
        pts = np.einsum("nij,nj->ni", mats[idx], pts) + shifts[idx]
        if it >= 10:
            cloud.append(pts)
    cloud = np.concatenate(cloud)
    lo, hi = cloud.min(0), cloud.max(0)
    scale = (size - 3) / max(float((hi - lo).max()), 1e-6)
    xy = ((cloud - lo) * scale + 1).astype(np.int64)
    xy += ((size - 3 - (hi - lo) * scale) / 2).astype(np.int64)
    xy = np.clip(xy, 0, size - 1)
    density = np.bincount(xy[:, 1] * size + xy[:, 0], minlength=size * size).reshape(size, size)
    t = np.log1p(density) / max(np.log1p(density.max()), 1e-6)
    rgb = _palette(rng, t) * (t > 0)[..., None]
    background = rng.uniform(0, 0.25, 3)
    return np.where((t > 0)[..., None], rgb, background)


def _julia_fractal(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth escape-time colouring of a Julia set z -> z^2 + c with c near the Mandelbrot border."""
    c = complex(0.7885 * np.exp(1j * rng.uniform(0, 2 * np.pi)))
    zoom, angle = rng.uniform(0.8, 1.6), rng.uniform(0, 2 * np.pi)
    lin = np.linspace(-1.5, 1.5, size) / zoom
    z = (lin[None, :] + 1j * lin[:, None]) * np.exp(1j * angle)
    count = np.zeros(z.shape)
    alive = np.ones(z.shape, bool)
    for _ in range(64):
        z[alive] = z[alive] ** 2 + c
        alive &= np.abs(z) <= 4
        count[alive] += 1
    with np.errstate(divide="ignore", invalid="ignore"):
        smooth = count + 1 - np.log2(np.maximum(np.log(np.abs(z) + 1e-12), 1e-12))
    smooth = np.nan_to_num(np.where(alive, 0.0, smooth), nan=0.0, posinf=0.0, neginf=0.0)
    t = (smooth - smooth.min()) / max(float(np.ptp(smooth)), 1e-6)
    return _palette(rng, t)


def write_fractal_mixing_set(out_dir: str | os.PathLike, n: int = 32, size: int = 64, seed: int = 0) -> Path:
    """`n` procedural fractal pictures (size x size PNGs, fractal_0000.png ...) in `out_dir`, for
    the offline demo: even indices random IFS fractals, odd ones Julia sets; deterministic from
    `seed`. Written into a temporary folder beside `out_dir` and moved into place with os.replace
    (an existing `out_dir` is replaced)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        children = np.random.SeedSequence([int(seed), 0x46524143]).spawn(n)  # tag "FRAC"
        for i, rng in enumerate(np.random.default_rng(s) for s in children):
            rgb = _ifs_fractal(rng, size) if i % 2 == 0 else _julia_fractal(rng, size)
            Image.fromarray(np.rint(rgb * 255).astype(np.uint8), "RGB").save(tmp / f"fractal_{i:04d}.png")
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            os.replace(out_dir, old / "d")
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
