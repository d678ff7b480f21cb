"""Classifiers: any torchvision or timm architecture by name, with BlurPool and the right head;
the optimizer's weight-decay groups; loading a trained model.

A name resolves to torchvision's model first, as the paper and ffcv-imagenet build theirs
(`torchvision.models.<arch>()`): timm's models of the same name differ (they zero-init the last
BatchNorm of each residual block; its EfficientNet-B0 and MobileNet-V2 have no dropout or
stochastic depth by default). Names only timm knows (mobilenetv2_100) resolve to timm.

Differences from ffcv-imagenet, on purpose (docs/paper.md, "Training"): weight decay is switched off
on normalisation layers by module type, not by `'bn' in name` (which misses torchvision's
`downsample.1` and every EfficientNet/MobileNet norm); any timm or torchvision architecture gets
the right head (`num_classes` at construction).
"""

from __future__ import annotations

import copy
import difflib
import sys

import torch
import torch.nn.functional as F
from torch import nn

from genrobust.beton import resolve_device


class BlurPoolConv2d(nn.Module):
    """ffcv-imagenet's BlurPool: a fixed 3x3 binomial blur (depthwise) before a strided conv."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        default_filter = torch.tensor([[[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]]) / 16.0
        filt = default_filter.repeat(conv.in_channels, 1, 1, 1)
        self.conv = conv
        self.register_buffer("blur_filter", filt)

    def forward(self, x):
        blurred = F.conv2d(x, self.blur_filter, stride=1, padding=(1, 1),
                           groups=self.conv.in_channels, bias=None)
        return self.conv.forward(blurred)


def apply_blurpool(module: nn.Module) -> nn.Module:
    """Wrap every Conv2d with stride > 1 and at least 16 input channels (in place)."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d) and max(child.stride) > 1 and child.in_channels >= 16:
            setattr(module, name, BlurPoolConv2d(child))
        else:
            apply_blurpool(child)
    return module


def create_model(arch: str, num_classes: int, blurpool: bool = True) -> nn.Module:
    """A randomly initialised classifier with a `num_classes` head.

    torchvision's model of that name if torchvision has it, else timm's; prefix the name with
    'torchvision:' or 'timm:' to choose the library explicitly.
    """
    import torchvision.models as tvm

    source, name = (arch.split(":", 1) if ":" in arch else (None, arch))
    if source not in (None, "timm", "torchvision"):
        raise ValueError(f"unknown model library {source!r} in {arch!r} (torchvision: or timm:)")
    if source in (None, "torchvision") and name in tvm.list_models(module=tvm):
        model = tvm.get_model(name, weights=None, num_classes=int(num_classes))
    elif source in (None, "timm") and _timm().is_model(name):
        timm = _timm()
        model = timm.create_model(name, pretrained=False, num_classes=int(num_classes))
    else:
        known = list(dict.fromkeys(list(_timm().list_models()) + list(tvm.list_models())))
        close = difflib.get_close_matches(name, known, n=8, cutoff=0.6)
        hint = f"; did you mean one of: {', '.join(close)}" if close else ""
        raise ValueError(f"unknown architecture {arch!r} (neither timm nor torchvision "
                         f"has it){hint}")
    if blurpool:
        apply_blurpool(model)
    return model


def _timm():
    """timm, imported only for a model torchvision lacks: it costs ~4 s of start-up per job."""
    import timm

    return timm


def classifier_head(model: nn.Module) -> nn.Linear:
    """The final Linear layer (the classification head) of a model."""
    head = None
    if hasattr(model, "get_classifier"):
        head = model.get_classifier()
    if not isinstance(head, nn.Linear):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError("model has no Linear layer")
        head = linears[-1]
    return head


def _norm_types() -> tuple[type, ...]:
    types = [nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm]
    if hasattr(nn, "RMSNorm"):
        types.append(nn.RMSNorm)
    tl = sys.modules.get("timm.layers")  # timm norms that do not subclass torch's; only a model
    if tl is not None:                   # built by timm (which then imported it) can hold them
        types += [getattr(tl, n) for n in ("RmsNorm", "RmsNorm2d", "SimpleNorm", "SimpleNorm2d",
                                           "FrozenBatchNorm2d") if hasattr(tl, n)]
    return tuple(types)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two SGD groups: normalisation-layer parameters (by module type: BatchNorm*, SyncBN,
    InstanceNorm, GroupNorm, LayerNorm, RMSNorm, timm's BatchNormAct2d etc.) without weight
    decay, every other parameter with `weight_decay`."""
    norm_types = _norm_types()
    no_decay_ids = set()
    for module in model.modules():
        if isinstance(module, norm_types):
            no_decay_ids.update(id(p) for p in module.parameters(recurse=False))
    decay, no_decay, seen = [], [], set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (no_decay if id(p) in no_decay_ids else decay).append(p)
    return [{"params": decay, "weight_decay": float(weight_decay)},
            {"params": no_decay, "weight_decay": 0.0}]


# ------------------------------------------------ separate BatchNorm statistics for generated images


class SplitBatchNorm(nn.Module):
    """A BatchNorm layer and its auxiliary twin (Yu et al., "Diversify, Don't Fine-Tune"; AdvProp's
    auxiliary BN): in training, the rows [start, stop) of a batch (the real images) go through
    `main` and every other row (the generated images) through `aux`, in one forward pass so that
    DDP sees one graph; in evaluation every row uses `main`, the real-data statistics."""

    def __init__(self, bn: nn.Module):
        super().__init__()
        self.main, self.aux = bn, copy.deepcopy(bn)
        self.real_rows: tuple[int, int] | None = None

    def forward(self, x):
        if not self.training or self.real_rows is None:
            return self.main(x)
        start, stop = self.real_rows
        if start == 0 and stop >= x.shape[0]:
            return self.main(x)
        real = self.main(x[start:stop])
        generated = self.aux(torch.cat([x[:start], x[stop:]]))
        return torch.cat([generated[:start], real, generated[start:]])


def with_separate_bn(model: nn.Module) -> nn.Module:
    """Every BatchNorm2d of `model` (timm's BatchNormAct2d too) becomes a SplitBatchNorm, in place."""
    for name, child in list(model.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            setattr(model, name, SplitBatchNorm(child))
        else:
            with_separate_bn(child)
    return model


def set_real_rows(model: nn.Module, rows: tuple[int, int] | None) -> None:
    """Which rows of every training batch are real images, for each SplitBatchNorm of `model`."""
    for module in model.modules():
        if isinstance(module, SplitBatchNorm):
            module.real_rows = rows


def plain_state_dict(model: nn.Module) -> dict:
    """The state dict of the model with only its main BatchNorms, as create_model's keys: what
    evaluation loads (the auxiliary statistics are a training device only)."""
    state = {}
    for key, value in model.state_dict().items():
        parts = key.split(".")
        if "aux" in parts[:-1] and _is_split(model, parts[:parts.index("aux")]):
            continue
        if "main" in parts[:-1] and _is_split(model, parts[:parts.index("main")]):
            parts.remove("main")
        state[".".join(parts)] = value
    return state


def _is_split(model: nn.Module, path: list[str]) -> bool:
    return isinstance(model.get_submodule(".".join(path)), SplitBatchNorm)


def load_classifier(path, device=None) -> tuple[nn.Module, list[str]]:
    """(model in eval mode on `device`, class_wnids) from a train_classifier output."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    model = create_model(payload["arch"], int(payload["num_classes"]),
                         blurpool=bool(payload["blurpool"]))
    model.load_state_dict(payload["state_dict"])
    model = model.to(resolve_device(device)).eval()
    return model, list(payload["class_wnids"])
