"""Renderers, one per strategy kind: `renderer(batch) -> (uint8 images, manifest rows)`, with
`prepare()` loading the model only when a shard has work left."""

from __future__ import annotations

import numpy as np

from ..seeding import derive_seed
from .pipelines import _generate_with_retries, load_pipeline
from .plan import GenerationError, ImageSpec, retry_seed
from .spec import StrategySpec


def load_source_images(batch: list[ImageSpec], size: tuple[int, int] | None = None) -> list:
    """The real images an image-conditioned batch starts from (RGB, optionally resized)."""
    from PIL import Image

    images = []
    for s in batch:
        try:
            with Image.open(s.source) as im:
                im = im.convert("RGB")
                images.append(im.resize(size, Image.Resampling.BICUBIC) if size else im.copy())
        except OSError as err:
            raise GenerationError(f"cannot read source image {s.source} ({err}); fix or remove it and "
                                  "re-index the dataset") from None
    return images


def _required(spec: StrategySpec, key: str) -> str:
    value = getattr(spec, key)
    if not value:
        raise GenerationError(f"a {spec.kind} strategy needs '{key}'")
    return value


class DiffusersRenderer:
    """A diffusers pipeline, one generator per image, NaN/black/flagged images regenerated."""

    def __init__(self, spec: StrategySpec, wnids: list[str], device: str):
        self.spec, self.wnids, self.device = spec, wnids, device
        self.pipe = None

    def prepare(self) -> None:
        s = self.spec
        self.pipe = load_pipeline(_required(s, "model_id"), s.revision, s.pipeline, s.scheduler, s.dtype,
                                  self.device, s.safety_checker, s.compile)

    def inputs(self, batch: list[ImageSpec]) -> tuple[dict, list[dict]]:
        """Pipeline keyword arguments for the batch (lists indexed like it) and per-image rows."""
        raise NotImplementedError

    def __call__(self, batch: list[ImageSpec]):
        s = self.spec
        kwargs, rows = self.inputs(batch)
        common = {"num_inference_steps": s.steps, "guidance_scale": s.guidance, "output_type": "np"}

        def call(pending, generators):
            picked = {k: [v[i] for i in pending] if isinstance(v, list) else v for k, v in kwargs.items()}
            return self.pipe(**picked, **common, generator=generators)

        images, attempts, reasons = _generate_with_retries(call, [b.seed for b in batch], self.device)
        scheduler = s.scheduler or type(self.pipe.scheduler).__name__
        for row, b, attempt, reason in zip(rows, batch, attempts, reasons):
            row.update(seed=retry_seed(b.seed, attempt), attempt=attempt, regenerated_because=reason,
                       model=s.model_id, revision=s.revision or "", pipeline=s.pipeline,
                       scheduler=scheduler, steps=s.steps, guidance=s.guidance)
        return images, rows


class ClassLabelRenderer(DiffusersRenderer):
    """Text-to-image from a seeded template of the class name (any diffusers text-to-image pipeline)."""

    def __init__(self, spec, wnids, device):
        from .. import prompts

        super().__init__(spec, wnids, device)
        self.templates = prompts.load_templates(spec.templates)
        self.names = prompts.load_class_names(wnids, spec.class_names)

    def prompts_for(self, batch):
        from .. import prompts

        chosen = [prompts.choose_template(self.templates, derive_seed(b.seed, "template"))[1] for b in batch]
        texts = [prompts.class_label_prompt(t, self.names[b.wnid]) for t, b in zip(chosen, batch)]
        return chosen, texts

    def inputs(self, batch):
        templates, texts = self.prompts_for(batch)
        size = {"height": self.spec.height, "width": self.spec.width}
        rows = [{"prompt": p, "template": t, **size} for p, t in zip(texts, templates)]
        return {"prompt": texts, **size}, rows


class Img2ImgRenderer(ClassLabelRenderer):
    """The real image, noised to `strength`, denoised towards its class prompt."""

    def inputs(self, batch):
        templates, texts = self.prompts_for(batch)
        size = (self.spec.width, self.spec.height)
        strength = self.spec.strength
        rows = [{"prompt": p, "template": t, "strength": strength, "width": size[0], "height": size[1]}
                for p, t in zip(texts, templates)]
        return {"prompt": texts, "image": load_source_images(batch, size), "strength": strength}, rows


class ImageVariationRenderer(DiffusersRenderer):
    """Variations of the real image through its CLIP image embedding (the pipeline's CLIP
    preprocessing resizes to 224 and normalises)."""

    def inputs(self, batch):
        size = {"height": self.spec.height, "width": self.spec.width}
        return {"image": load_source_images(batch), **size}, [dict(size) for _ in batch]


class ClassConditionalRenderer(DiffusersRenderer):
    """A class-conditional model trained on ImageNet only (DiTPipeline: ImageNet class ids)."""

    def inputs(self, batch):
        from ..datasets import imagenet_wnids

        index = {w: i for i, w in enumerate(imagenet_wnids())}
        ids = [index[b.wnid] for b in batch]
        return {"class_labels": ids}, [{"class_id": i} for i in ids]


class DeepAugmentRenderer:
    """DeepAugment: the real image through EDSR or CAE with seeded weight/activation perturbations."""

    def __init__(self, spec: StrategySpec, wnids: list[str], device: str):
        self.spec, self.device, self.nets = spec, device, None

    def prepare(self):
        from ..baselines import load_deepaugment_nets

        self.nets = load_deepaugment_nets(_required(self.spec, "weights"), self.device)

    def __call__(self, batch):
        from ..baselines import deepaugment

        images = deepaugment(load_source_images(batch), [b.seed for b in batch], self.nets, self.device)
        return images, [{"seed": b.seed, "attempt": 0, "model": self.spec.weights} for b in batch]


class PixMixRenderer:
    """PixMix: the real image mixed with seeded augmentations of itself and of mixing pictures."""

    def __init__(self, spec: StrategySpec, wnids: list[str], device: str):
        self.spec, self.pictures = spec, None

    def prepare(self):
        from ..baselines import index_mixing_set

        self.pictures = index_mixing_set(_required(self.spec, "mixing_set"))

    def __call__(self, batch):
        from ..baselines import pixmix

        # The original's ImageNet settings (imagenet.py): k=4, beta=4, severity 1, no colour ops.
        images = [np.asarray(pixmix(src, self.pictures, b.seed, k=4, beta=4, aug_severity=1, all_ops=False))
                  for src, b in zip(load_source_images(batch), batch)]
        return images, [{"seed": b.seed, "attempt": 0, "model": self.spec.mixing_set} for b in batch]


RENDERERS = {
    "class_labels": ClassLabelRenderer,
    "img2img": Img2ImgRenderer,
    "image_variation": ImageVariationRenderer,
    "class_conditional": ClassConditionalRenderer,
    "deepaugment": DeepAugmentRenderer,
    "pixmix": PixMixRenderer,
}
