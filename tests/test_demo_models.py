"""Tiny random-weight models (genrobust.demo.models): built offline, saved in the real formats,
and loaded back by the real `from_pretrained` code."""

import os

# Must be set before huggingface_hub is first imported; the subprocess test below checks the
# offline load in a fresh process with an empty HF cache regardless of import order.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hashlib
import json
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genrobust import architectures
from genrobust.tokenizer import build_tokenizer
from genrobust.demo import models

GENERATORS = ["sd", "few_step_lora", "image_variation", "dit", "clip"]
MAX_FOLDER_MB = {"sd": 16, "few_step_lora": 1, "image_variation": 8, "dit": 4, "clip": 9, "tokenizer": 2}


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def weight_digests(path: Path) -> dict[str, str]:
    """sha256 per .safetensors file of its tensors and metadata, in name order: the file's bytes
    are not a fingerprint, as safetensors writes its metadata entries in a per-process random
    order (a Rust HashMap)."""
    from safetensors import safe_open

    digests = {}
    for f in sorted(path.rglob("*.safetensors")):
        digest = hashlib.sha256()
        with safe_open(f, "pt") as weights:
            digest.update(json.dumps(weights.metadata(), sort_keys=True).encode())
            for key in sorted(weights.keys()):
                tensor = weights.get_tensor(key)
                digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
                digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        digests[str(f.relative_to(path))] = digest.hexdigest()
    return digests


def source_image(width=80, height=96, seed=0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def seeded(seed=0):
    return torch.Generator("cpu").manual_seed(seed)


@pytest.fixture(scope="module")
def model_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    paths = models.build_all(root, seed=0)
    assert paths == {name: root / name for name in GENERATORS}
    return root


@pytest.fixture(scope="module")
def sd_pipe(model_root):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(model_root / "sd")
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ---------------------------------------------------------------- layout and sizes


def test_build_all_layout_and_sizes(model_root):
    assert sorted(p.name for p in model_root.iterdir()) == sorted(GENERATORS)  # no temp leftovers
    for name in GENERATORS:
        assert folder_mb(model_root / name) < MAX_FOLDER_MB[name], name
    for tokenizer_dir in (model_root / "sd" / "tokenizer", model_root / "clip"):
        assert (tokenizer_dir / "vocab.json").is_file() and (tokenizer_dir / "merges.txt").is_file()
        assert not (tokenizer_dir / "tokenizer.json").exists()
    index = json.loads((model_root / "sd" / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["safety_checker"] == [None, None] and index["requires_safety_checker"] is False
    scheduler = json.loads((model_root / "sd" / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["_class_name"] == "PNDMScheduler"
    assert {k: scheduler[k] for k in architectures.sd15_scheduler_config()} == architectures.sd15_scheduler_config()
    assert all(f.stat().st_mode & 0o044 == 0o044 for f in model_root.rglob("*") if f.is_file())  # shareable


def test_tokenizer_is_the_real_clip_bpe(tmp_path):
    import open_clip
    from transformers import CLIPTokenizer

    build_tokenizer(tmp_path / "tok")
    assert folder_mb(tmp_path / "tok") < MAX_FOLDER_MB["tokenizer"]
    tokenizer = CLIPTokenizer.from_pretrained(tmp_path / "tok")
    assert len(tokenizer) == 49408 and tokenizer.model_max_length == 77
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (49406, 49407, 49407)
    reference = open_clip.get_tokenizer("ViT-B-32")  # bundled merges, no download
    for prompt in ["a bad photo of a tench.", "a jpeg corrupted photo of the Rhodesian Ridgeback.", "itap of my ski."]:
        ours = tokenizer(prompt).input_ids
        theirs = [i for i in reference([prompt])[0].tolist() if i]
        assert ours == theirs, prompt


# ---------------------------------------------------------------- generation through the real pipelines


def test_sd_text_to_image(sd_pipe):
    out = sd_pipe(
        ["a bad photo of a tench.", "a sketch of a goldfish."],
        num_inference_steps=3,
        guidance_scale=7.5,
        generator=seeded(0),
        output_type="np",
    )
    assert out.images.shape == (2, 64, 64, 3)
    assert np.isfinite(out.images).all()
    again = sd_pipe(["a bad photo of a tench."], num_inference_steps=2, generator=seeded(1), output_type="pil")
    assert again.images[0].size == (64, 64)


def test_sd_img2img_from_same_folder(model_root):
    from diffusers import StableDiffusionImg2ImgPipeline

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(model_root / "sd")
    pipe.set_progress_bar_config(disable=True)
    image = source_image(64, 64)
    outs = [
        pipe(["a photo of a tench."], image=image, strength=strength, num_inference_steps=4,
             generator=seeded(3), output_type="np").images
        for strength in (1.0, 0.5, 0.5)
    ]
    assert all(o.shape == (1, 64, 64, 3) for o in outs)
    np.testing.assert_array_equal(outs[1], outs[2])  # seeded per call -> reproducible


def test_image_variation(model_root):
    from diffusers import StableDiffusionImageVariationPipeline

    pipe = StableDiffusionImageVariationPipeline.from_pretrained(model_root / "image_variation")
    pipe.set_progress_bar_config(disable=True)
    out = pipe(source_image(), num_inference_steps=3, guidance_scale=3.0, generator=seeded(0), output_type="np")
    assert out.images.shape == (1, 64, 64, 3)


def test_dit_class_conditional(model_root, tmp_path):
    from diffusers import DiTPipeline

    pipe = DiTPipeline.from_pretrained(model_root / "dit")
    pipe.set_progress_bar_config(disable=True)
    out = pipe(class_labels=[0, 999], num_inference_steps=3, guidance_scale=3.0, generator=seeded(0), output_type="np")
    assert out.images.shape == (2, 64, 64, 3)

    models.build_tiny_dit(tmp_path / "dit", id2label={0: "tench, Tinca tinca", 1: "goldfish"})
    stored = json.loads((tmp_path / "dit" / "model_index.json").read_text())["id2label"]
    named = DiTPipeline.from_pretrained(tmp_path / "dit", id2label={int(k): v for k, v in stored.items()})
    assert named.get_label_ids(["Tinca tinca", "goldfish"]) == [0, 1]


def test_clip_model_and_processor(model_root):
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(model_root / "clip").eval()
    processor = CLIPProcessor.from_pretrained(model_root / "clip")
    inputs = processor(
        text=["a photo of a tench.", "a photo of a goldfish."],
        images=[source_image(), source_image(seed=1), source_image(seed=2)],
        return_tensors="pt",
        padding=True,
    )
    assert inputs.pixel_values.shape == (3, 3, 32, 32)
    with torch.no_grad():
        out = model(**inputs)
        image_features = model.get_image_features(pixel_values=inputs.pixel_values).pooler_output
        text_features = model.get_text_features(input_ids=inputs.input_ids).pooler_output
    assert out.logits_per_image.shape == (3, 2)
    assert image_features.shape == (3, 16) and text_features.shape == (2, 16)


# ---------------------------------------------------------------- determinism, atomicity, offline load


@pytest.mark.parametrize("name", GENERATORS)
def test_same_seed_same_weights(name, model_root, tmp_path):
    build = {
        "sd": models.build_tiny_sd,
        "few_step_lora": lambda out, seed: models.build_tiny_lora(out, model_root / "sd", seed),
        "image_variation": models.build_tiny_image_variation,
        "dit": models.build_tiny_dit,
        "clip": models.build_tiny_clip,
    }[name]
    build(tmp_path / "again", seed=0)
    build(tmp_path / "other", seed=1)
    reference = weight_digests(model_root / name)
    assert reference and weight_digests(tmp_path / "again") == reference
    other = weight_digests(tmp_path / "other")
    assert other.keys() == reference.keys()
    assert all(other[k] != reference[k] for k in reference)


def test_rebuild_replaces_folder_and_failed_build_leaves_nothing(tmp_path, monkeypatch):
    models.build_tiny_dit(tmp_path / "dit", seed=0)
    (tmp_path / "dit" / "stale.txt").write_text("old")
    models.build_tiny_dit(tmp_path / "dit", seed=1)
    assert not (tmp_path / "dit" / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dit"]

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(models, "_tiny_vae", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        models.build_tiny_dit(tmp_path / "new_dit")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dit"]


def test_fresh_offline_process_loads_everything_silently(model_root, tmp_path):
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        import diffusers, transformers, torch
        diffusers.utils.logging.disable_progress_bar()
        transformers.utils.logging.disable_progress_bar()
        from diffusers import (DiTPipeline, StableDiffusionImageVariationPipeline,
                               StableDiffusionImg2ImgPipeline, StableDiffusionPipeline)
        from transformers import CLIPModel, CLIPProcessor, CLIPTokenizer
        root = Path(sys.argv[1])
        pipe = StableDiffusionPipeline.from_pretrained(root / "sd")
        StableDiffusionImg2ImgPipeline.from_pretrained(root / "sd")
        StableDiffusionImageVariationPipeline.from_pretrained(root / "image_variation")
        DiTPipeline.from_pretrained(root / "dit")
        CLIPModel.from_pretrained(root / "clip")
        CLIPProcessor.from_pretrained(root / "clip")
        CLIPTokenizer.from_pretrained(root / "sd" / "tokenizer")
        pipe.set_progress_bar_config(disable=True)
        images = pipe(["a photo of a tench."], num_inference_steps=2, output_type="np").images
        print(images.shape)
        """
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),  # empty cache: nothing can come from it
        "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(models.__file__).parents[2]), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", script, str(model_root)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 64, 64, 3)"
    assert done.stderr == "", done.stderr  # no warnings, no log lines


# ---------------------------------------------------------------- full-size SD v1.5 architecture


def test_sd15_configs_build_on_meta_without_memory():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.device("meta"):
        unet = UNet2DConditionModel(**architectures.sd15_unet_config())
        vae = AutoencoderKL(**architectures.sd15_vae_config())
        text = CLIPTextModel(CLIPTextConfig(**architectures.sd15_text_config()))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_kb) / 1024
    assert grown_mb < 300  # the real fp32 weights would be ~4.3 GB

    counts = {}
    for name, module in [("unet", unet), ("vae", vae), ("text", text)]:
        assert all(p.is_meta for p in module.parameters()), name
        counts[name] = sum(p.numel() for p in module.parameters())
    assert counts == {"unet": 859_520_964, "vae": 83_653_863, "text": 123_060_480}
    assert unet.config.cross_attention_dim == text.config.hidden_size == 768
    assert vae.config.scaling_factor == 0.18215 and vae.config.latent_channels == unet.config.in_channels == 4
