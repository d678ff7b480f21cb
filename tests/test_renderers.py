"""Renderers against the paper's own generation code: the image-variation conditioning tensor, the
class-conditional baseline's sampler, DeepAugment's input scales."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from genrobust import generate
from genrobust.generate import renderers
from genrobust.generate.plan import ImageSpec
from genrobust.kinds import STRATEGIES

ROOT = Path(__file__).resolve().parents[1]
WNIDS = ["n01440764", "n01443537"]


def card_transform(size: int = 224):
    """The lambdalabs/sd-image-variations-diffusers v2.0 model card's transform, as written there
    (and in the paper's generation/generate_images.py)."""
    from torchvision import transforms

    return transforms.Compose([
        transforms.ToTensor(),
        transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BICUBIC, antialias=False),
        transforms.Normalize([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]),
    ])


def photo(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.stack([xx * 255 // w, yy * 255 // h, rng.integers(0, 256, (h, w))], -1).astype(np.uint8)
    return Image.fromarray(a)


def sources(tmp_path, shapes) -> list[ImageSpec]:
    batch = []
    for i, (w, h) in enumerate(shapes):
        path = tmp_path / f"src{i}.png"
        photo(w, h, seed=i).save(path)
        batch.append(ImageSpec(id=f"s-{i}", wnid=WNIDS[i % 2], k=0, seed=100 + i, source=str(path)))
    return batch


def strategy(name: str, config: str = "config.yaml") -> dict:
    """A strategy of config/<config> as strategy_spec() passes it, without its model key."""
    spec = dict(yaml.safe_load((ROOT / "config" / config).read_text())["strategies"][name])
    spec.pop("model", None)
    return spec


def test_every_generated_strategy_kind_has_a_renderer():
    assert set(renderers.RENDERERS) == set(STRATEGIES.names(generated=True))


def test_variation_conditioning_is_the_model_cards_tensor():
    image = photo(500, 375)
    ours = renderers.variation_conditioning([image], 224)
    assert ours.shape == (1, 3, 224, 224)
    assert torch.equal(ours[0], card_transform(224)(image))
    # The pipeline's own CLIPImageProcessor (short side, centre crop, antialiased) is another image.
    from transformers import CLIPImageProcessor

    processed = CLIPImageProcessor(crop_size=224, size=224)(images=image, return_tensors="pt").pixel_values
    assert (processed - ours).abs().mean() > 0.05


def test_variation_renderer_feeds_the_encoder_the_cards_tensor(tmp_path):
    """The tensor skips the pipeline's feature extractor: the encoder sees exactly the card's
    squash of each (non-square) source, at the encoder's size (32 px for the tiny model, 224 for
    lambdalabs'); the manifest records the preprocessing."""
    from genrobust.demo.models import build_tiny_image_variation

    model = build_tiny_image_variation(tmp_path / "iv", seed=0)
    spec = generate.StrategySpec.from_dict({"kind": "image_variation", "model_id": str(model),
                                            "pipeline": "StableDiffusionImageVariationPipeline", "scheduler": None,
                                            "steps": 2, "guidance": 3.0, "height": 32, "width": 32,
                                            "dtype": "float32"})
    renderer = renderers.ImageVariationRenderer(spec, WNIDS, "cpu")
    renderer.prepare()
    seen = []
    renderer.pipe.image_encoder.register_forward_pre_hook(lambda m, args: seen.append(args[0].clone()))
    batch = sources(tmp_path, [(64, 48), (48, 64)])
    images, rows = renderer(batch)
    size = renderer.pipe.image_encoder.config.image_size
    expected = torch.stack([card_transform(size)(Image.open(b.source).convert("RGB")) for b in batch])
    assert torch.equal(seen[0], expected)
    assert [im.shape for im in images] == [(32, 32, 3)] * 2
    assert all(r["preprocessing"].startswith(f"squash to {size}x{size}, bicubic, antialias=False") for r in rows)
    assert renderer.settings() == {"conditioning": "model card"}  # older shards start afresh


@pytest.mark.parametrize("config", ["config.yaml", "demo.yaml"])
def test_class_conditional_baseline_samples_with_ddim_20_steps_eta_0(tmp_path, config):
    """The paper's cin256-v2 LDM sampled with DDIM, 20 steps, eta 0, scale 3. The config pins the
    scheduler: left out, the schema's default (PNDM) would replace the DiT's DDIM."""
    from genrobust.demo.models import build_tiny_dit

    given = strategy("ldm", config)
    assert (given["scheduler"], given["steps"], given["guidance"]) == ("DDIMScheduler", 20, 3.0)
    model = build_tiny_dit(tmp_path / "dit", seed=0)
    spec = generate.StrategySpec.from_dict({**given, "model_id": str(model), "dtype": "float32"})
    renderer = renderers.ClassConditionalRenderer(spec, WNIDS, "cpu")
    renderer.prepare()
    scheduler = renderer.pipe.scheduler
    assert type(scheduler).__name__ == "DDIMScheduler"
    steps, step = [], scheduler.step

    def spy(*args, **kwargs):
        steps.append(kwargs.get("eta", 0.0))
        return step(*args, **kwargs)

    scheduler.step = spy
    batch = generate.plan_images("ldm", "train", WNIDS[:1], 1, 0)
    _, rows = renderer(batch)
    assert steps == [0.0] * 20  # DDIMScheduler.step's eta defaults to 0 and DiTPipeline passes none
    assert rows[0]["scheduler"] == "DDIMScheduler" and rows[0]["steps"] == 20 and rows[0]["guidance"] == 3.0


def test_deepaugment_strategy_defaults_to_the_original_scales(tmp_path, monkeypatch):
    """Short side 128 into EDSR and 512 into the CAE unless the strategy says otherwise (the demo
    runs at the images' own scale)."""
    import genrobust.baselines

    calls = []

    def fake(images, seeds, nets, device, **kwargs):
        calls.append(kwargs)
        return [np.asarray(im) for im in images]

    monkeypatch.setattr(genrobust.baselines, "deepaugment", fake)
    batch = sources(tmp_path, [(64, 48)])
    for given, expected in (({}, (128, 512)), (strategy("deepaugment"), (128, 512)),
                            (strategy("deepaugment", "demo.yaml"), (None, None))):
        spec = generate.StrategySpec.from_dict({"kind": "deepaugment", "weights": "w", **given})
        renderer = renderers.DeepAugmentRenderer(spec, WNIDS, "cpu")
        _, rows = renderer(batch)
        assert (calls[-1]["edsr_input_size"], calls[-1]["cae_input_size"]) == expected
        assert renderer.settings()["edsr_input_size"] == expected[0]
        assert rows[0]["preprocessing"].startswith(f"short side {expected[0] or 'own'} into EDSR")
