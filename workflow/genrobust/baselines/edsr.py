"""EDSR for DeepAugment: the network and its random weight perturbation.

Architecture from DeepAugment/EDSR_distort_imagenet.py (class EDSR) with the blocks of
EDSR-PyTorch's model/common.py (default_conv, MeanShift, ResBlock, Upsampler), which DeepAugment
imports as EDSR_Model.common. Defaults = the "EDSR baseline x4" that DeepAugment loads
(n_resblocks=16, n_feats=64, scale=4, res_scale=1, rgb_range=255). `EDSR.forward` holds the
original's "pre" and "body" activation distortions, `perturb_edsr_weights` its `get_weights`
(17 weight distortions, 3 applied per draw).
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ._random import rand


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
        x = self._pre_distort(x, pre_distortion, rng, generator)
        res = self._distorted_body(x, body_distortion, rng)
        res = res + x
        x = self.tail(res)
        return self.add_mean(x)

    def _pre_distort(self, x, pre_distortion, rng, generator):
        """The pre-distortions of EDSR_distort_imagenet.py, EDSR.forward."""
        if pre_distortion == 1:
            # Original: `x[:, c1], x[:, c2] = x[:, c2], x[:, c1]` five times. On torch views this
            # tuple "swap" copies channel c2 into c1 and leaves c2 as it is (the right-hand views
            # alias x); we reproduce what the original computed, not what it meant.
            x = x.clone()
            for _ in range(5):
                c1, c2 = int(rng.integers(0, self.n_feats)), int(rng.integers(0, self.n_feats))
                x[:, c1] = x[:, c2]
        elif pre_distortion == 2:
            x = x * torch.round(rand(x.shape, generator, x) + 0.45)  # random 1/0 mask, P(1)=0.55
        elif pre_distortion == 3:
            x = x * ((torch.round(rand(x.shape, generator, x) + 0.475) * 2) - 1)  # random +-1
        return x

    def _distorted_body(self, x, body_distortion, rng):
        """The body distortions of EDSR_distort_imagenet.py, EDSR.forward."""
        if body_distortion == 1:
            return self.body[5:](-self.body[:5](x))
        if body_distortion == 2:
            act = F.relu if int(rng.integers(0, 3)) == 1 else F.gelu
            return self.body[5:](act(self.body[:5](x)))
        if body_distortion == 3:
            axes = [1, 2] if int(rng.integers(0, 3)) == 1 else [1, 3]
            return self.body[5:](torch.flip(self.body[:5](x), axes))
        if body_distortion == 4:
            # Original: `for i in range(len(self.body)): if i not in to_skip: res = self.body[i](x)`
            # -- every layer is applied to x, so res is the last non-skipped layer applied to x.
            # Computing only that layer gives the same result.
            to_skip = {int(rng.integers(2, 17)) for _ in range(3)}
            last = max(i for i in range(len(self.body)) if i not in to_skip)
            return self.body[last](x)
        return self.body(x)


def build_edsr() -> EDSR:
    """EDSR baseline x4 as DeepAugment loads it (16 res-blocks, 64 features, x4, res_scale 1)."""
    return EDSR(n_resblocks=16, n_feats=64, scale=4, res_scale=1.0, rgb_range=255, n_colors=3)


# ---------------------------------------------------------------------- weight perturbation


def perturb_edsr_weights(state: Mapping[str, torch.Tensor], rng: np.random.Generator,
                         gen: torch.Generator) -> dict[str, torch.Tensor]:
    """EDSR_distort_imagenet.py, get_weights(): 3 options drawn from 0..16, applied in turn.

    Returns a new dict; tensors of `state` are never modified. Indices, ranges and constants
    are the original's (e.g. np.arange(0, 10, 3) -> blocks 0, 3, 6, 9; option 6's
    `2*torch.rand_like(w-1)` is 2*U(0,1), kept as such).
    """
    w = dict(state)
    for option in rng.integers(0, 17, size=3):
        option = int(option)
        if option <= 7:
            _perturb_one_block(w, option, rng, gen)
        elif option <= 10:
            _convolve_kernels(w, option, rng, gen)
        elif option <= 16:
            _perturb_random_convs(w, option, rng, gen)
        else:  # pragma: no cover
            raise AssertionError(option)
    return w


def _key(i, j, kind="weight") -> str:
    """State-dict key of conv j (0 or 2) of residual block i."""
    return f"body.{int(i)}.body.{int(j)}.{kind}"


def _rand_like(t: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return rand(t.shape, gen, t)


def _perturb_one_block(w: dict, option: int, rng: np.random.Generator, gen: torch.Generator) -> None:
    """Options 0..7: flip, negate, zero, filter or rescale the convs of one residual block."""
    i = rng.choice(np.arange(1, 10, 3) if option == 1 else np.arange(0, 10, 3))
    if option == 0:  # reverse the filter order of both convs of a block (weights and biases)
        for name in (_key(i, 0), _key(i, 0, "bias"), _key(i, 2), _key(i, 2, "bias")):
            w[name] = torch.flip(w[name], (0,))
    elif option == 1:  # negate the first conv of a block
        w[_key(i, 0)], w[_key(i, 0, "bias")] = -w[_key(i, 0)], -w[_key(i, 0, "bias")]
    elif option == 2:  # zero the first conv of a block
        w[_key(i, 0)], w[_key(i, 0, "bias")] = 0 * w[_key(i, 0)], 0 * w[_key(i, 0, "bias")]
    elif option == 3:
        w[_key(i, 0)] = -F.gelu(w[_key(i, 0)])
        w[_key(i, 2)] = -F.gelu(w[_key(i, 2)])
    elif option in (4, 5):  # multiply every 3x3 kernel by a Laplacian / high-pass kernel
        kern = ([[0, 1, 0], [1, -4.0, 1], [0, 1, 0]] if option == 4
                else [[-1, -1, -1], [-1, 8.0, -1], [-1, -1, -1]])
        t = w[_key(i, 0)]
        w[_key(i, 0)] = t * torch.tensor(kern, dtype=t.dtype, device=t.device).view(1, 1, 3, 3)
    elif option == 6:
        t = w[_key(i, 2)]
        w[_key(i, 2)] = t * (1 + 2 * float(np.float32(rng.uniform())) * (2 * _rand_like(t, gen)))
    else:  # option 7
        w[_key(i, 0)] = torch.flip(w[_key(i, 0)], (-1,))
        w[_key(i, 2)] = -1 * w[_key(i, 2)]


def _convolve_kernels(w: dict, option: int, rng: np.random.Generator, gen: torch.Generator) -> None:
    """Options 8..10: convolve one conv's kernels with random shift / random / Dirichlet kernels."""
    if option == 8:  # convolve the kernels with random +-1 shift kernels
        i = rng.choice(np.arange(1, 13, 4))
        t = w[_key(i, 0)]
        z = torch.zeros_like(t)
        for j in range(z.size(0)):
            sx, sy = rng.integers(3, size=2)
            z[:, j, int(sx), int(sy)] = float(rng.choice([1.0, -1.0]))
        w[_key(i, 0)] = F.conv2d(t, z, padding=1)
    elif option == 9:  # convolve the kernels with a random kernel
        i = rng.choice(np.arange(0, 10, 3))
        t = w[_key(i, 0)]
        z = (2 * _rand_like(t, gen) * float(np.float32(rng.uniform())) - 1) / 6.0
        w[_key(i, 0)] = F.conv2d(t, z, padding=1)
    else:  # option 10: convolve with sparse Dirichlet(0.1) kernels
        i = rng.choice(np.arange(1, 12, 4))
        t = w[_key(i, 2)]
        c = t.size(0)
        z = torch.from_numpy(rng.dirichlet([0.1] * 9, (c, c))).to(t.device, t.dtype).view(c, c, 3, 3)
        w[_key(i, 2)] = F.conv2d(t, z, padding=1)


def _perturb_random_convs(w: dict, option: int, rng: np.random.Generator, gen: torch.Generator) -> None:
    """Options 11..16: noise, rotations, masks, sign flips or max-tap kernels on random convs."""
    if option == 11:  # additive uniform noise on a second conv
        i = int(rng.integers(15))
        t = w[_key(i, 2)]
        w[_key(i, 2)] = t + (_rand_like(t, gen) - 0.5) * 1.0
    elif option == 12:  # rotate kernels (spatially or across channels) of 5 convs
        pairs = [(int(rng.integers(15)), int(rng.choice([0, 2]))) for _ in range(5)]
        for i, j in pairs:
            rot = int(rng.integers(1, 4))
            dims = (2, 3) if int(rng.integers(0, 2)) == 0 else (0, 1)
            w[_key(i, j)] = torch.rot90(w[_key(i, j)], k=rot, dims=dims)
    elif option in (13, 14):  # random +-1 (13) or 1/0 (14) mask on 5 first convs
        for i in [int(rng.integers(15)) for _ in range(5)]:
            t = w[_key(i, 0)]
            mask = torch.round(_rand_like(t, gen))
            w[_key(i, 0)] = t * (mask * 2 - 1 if option == 13 else mask)
    elif option == 15:  # negate 32 random filters (with repeats) of 5 first convs
        for i in [int(rng.integers(15)) for _ in range(5)]:
            # `w[filters] *= -1` with repeated indices negates each distinct filter once
            idx = torch.as_tensor(np.unique(rng.integers(64, size=32)))
            t = w[_key(i, 0)].clone()
            t[idx] = -t[idx]
            w[_key(i, 0)] = t
    else:  # option 16: keep only the max tap of each 3x3 kernel in 5 convs
        pairs = [(int(rng.integers(15)), int(rng.choice([0, 2]))) for _ in range(5)]
        for i, j in pairs:
            t = w[_key(i, j)]
            flat = t.reshape(t.shape[0], t.shape[1], -1)
            top = torch.topk(flat, k=1)
            w[_key(i, j)] = torch.zeros_like(flat).scatter(2, top.indices, top.values).reshape(t.shape)
