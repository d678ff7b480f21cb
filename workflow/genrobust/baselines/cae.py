"""CAE for DeepAugment: the network, its random latent ops and its weight perturbation.

DeepAugment/CAE_Model/cae_32x32x32_zero_pad_bin.py (class CAE), the 32x32x32-bit compressive
autoencoder (alexandru-dinu/cae) with zero padding and stochastic binarisation: architecture,
the 9 random latent ops of its `forward`, stochastic binarisation. Input and output in [0, 1]
(tanh output, clamped by the caller as in CAE_distort_imagenet.py). `perturb_cae_weights` is
`get_weights` of DeepAugment/CAE_distort_imagenet.py (8 weight distortions, 1 per draw).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ._random import rand


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
        noise = rand(ec3.shape, generator, ec3)
        prob = (1 + ec3) / 2
        eps = torch.where(noise <= prob, 1 - ec3, -ec3 - 1)
        encoded = 0.5 * (ec3 + eps + 1)  # (-1|1) -> (0|1)
        if option == 0:
            # original: `encoded * (3 + 2*np.float32(U) * (2*torch.rand_like(encoded-1)))`
            u = float(np.float32(rng.uniform()))
            encoded = encoded * (3 + 2 * u * (2 * rand(encoded.shape, generator, encoded)))
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
        ec3 = ec3 * (rand((h, w), gen, ec3) > 0.2).to(ec3.dtype)
    elif option == 2:  # negate some latent positions
        ec3 = ec3 * ((rand((h, w), gen, ec3) > 0.1).to(ec3.dtype) * 2 - 1)
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
        ec3 = F.conv2d(ec3, _latent_kernel(c, option, rng, gen, ec3.dtype).to(ec3.device), padding=1)
    elif option != 0:
        raise ValueError(f"CAE latent option {option} not in 0..8")
    return ec3


def _latent_kernel(c: int, option: int, rng: np.random.Generator, gen: torch.Generator,
                   dtype: torch.dtype) -> torch.Tensor:
    """The c x c x 3 x 3 kernel of latent ops 6 (noisy identity), 7 (identity plus random taps)
    and 8 (random shifts)."""
    z = torch.zeros(c, c, 3, 3, dtype=dtype)
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
    return z


def build_cae() -> CAE:
    """The CAE of DeepAugment (cae_32x32x32_zero_pad_bin)."""
    return CAE()


# ---------------------------------------------------------------------- weight perturbation

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
        return rand(t.shape, gen, t)

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
