"""Random stand-ins for DeepAugment's pretrained EDSR and CAE weights (offline demo and tests),
in the state-dict layout that genrobust.baselines.load_deepaugment_nets reads."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn as nn

from genrobust.baselines.cae import build_cae
from genrobust.baselines.edsr import MeanShift, build_edsr
from genrobust.io import atomic_path


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
    out_dir = Path(out_dir)
    gen = torch.Generator().manual_seed(int(seed))
    for name, net in (("edsr.pt", build_edsr()), ("cae.pt", build_cae())):
        _random_init(net, gen)
        with atomic_path(out_dir / name) as tmp:
            torch.save(net.state_dict(), tmp)
    return out_dir
