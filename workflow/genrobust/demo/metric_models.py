"""Tiny random-weight stand-ins for the metric models (Tables 2, 5 and 7), in their real formats.

- an Inception-like feature extractor saved as TorchScript, in clean-fid's custom-extractor
  convention: float images (B, 3, 299, 299) in 0..255 -> non-negative pooled features (B, 64);
- a tiny CLIP in open_clip's `local-dir:` layout (open_clip_config.json + open_clip_model.safetensors),
  with the real 49,408-token CLIP BPE vocabulary of open_clip's own tokenizer;
- two timm ImageNet-1K architectures of timm's own test family with random weights: `test_vit`
  as a `local-dir:` folder written by timm's save_for_hf, and `test_resnet` as a state-dict
  file for `pretrained_cfg_overlay=dict(file=...)`. Both load through the one code path of hub
  names (`timm.create_model(name, pretrained=True, ...)`) with their pretrained configs'
  preprocessing (160 px).
Each is written atomically and seeded (same seed, same weights).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from genrobust import io

FEATURE_DIM = 64
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
TIMM_FOLDER_MODEL = "test_vit.r160_in1k"
TIMM_FILE_MODEL = "test_resnet.r160_in1k"


class InceptionLike(nn.Module):
    """Two strided convolutions and a global average pool after ReLU, like Inception's pool3
    (scaled so that its features spread about as widely: FIDs of tens, not hundredths)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 7, stride=4), nn.ReLU(), nn.Conv2d(16, FEATURE_DIM, 3, stride=2),
                                      nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 10 * self.features((x - 128) / 128)  # clean-fid's Inception normalises the input the same way


def build_inception_like(path: str | os.PathLike, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    with warnings.catch_warnings():  # TorchScript is deprecated, but it is clean-fid's format
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(InceptionLike().eval())
    with io.atomic_path(path, suffix=".pt") as tmp:
        scripted.save(str(tmp))
    return Path(path)


def build_tiny_open_clip(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_CLIP)
    with io.atomic_dir(out_dir) as tmp:
        config = {"model_cfg": TINY_CLIP, "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN),
                                                             "std": list(open_clip.OPENAI_DATASET_STD)}}
        (tmp / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "open_clip_model.safetensors"))
        _readable(tmp)
    return Path(out_dir)


def build_tiny_timm(out_root: str | os.PathLike, seed: int = 0) -> dict[str, Path]:
    """test_vit as a save_for_hf folder and test_resnet as a state-dict file (random weights)."""
    import timm
    from timm.models import save_for_hf

    root = Path(out_root)
    torch.manual_seed(seed)
    folder_model = timm.create_model(TIMM_FOLDER_MODEL, pretrained=False)
    folder = root / TIMM_FOLDER_MODEL.split(".")[0]
    with io.atomic_dir(folder) as tmp:
        save_for_hf(folder_model, str(tmp), safe_serialization=True)
        _readable(tmp)
    torch.manual_seed(seed + 1)
    file_model = timm.create_model(TIMM_FILE_MODEL, pretrained=False)
    file = root / f"{TIMM_FILE_MODEL.split('.')[0]}.pth"
    with io.atomic_path(file, suffix=".pth") as tmp:
        torch.save(file_model.state_dict(), tmp)
    return {"folder": folder, "file": file}


def _readable(folder: Path) -> None:
    """safetensors writes its files 0600; make them readable as the umask allows."""
    for path in folder.iterdir():
        path.chmod(0o666 & ~io.current_umask())


def build_metric_models(out_root: str | os.PathLike, seed: int = 0) -> dict[str, str]:
    """Every metric stand-in under out_root, and <out_root>/metric_models.json listing them."""
    root = Path(out_root)
    built = {"inception": build_inception_like(root / "inception_like.pt", seed),
             "open_clip": build_tiny_open_clip(root / "open_clip", seed), **build_tiny_timm(root / "timm", seed)}
    listing = {name: str(path) for name, path in built.items()}
    io.write_json(root / "metric_models.json", listing)
    return listing
