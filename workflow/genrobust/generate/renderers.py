"""Renderers, one per strategy kind: `renderer(batch) -> (uint8 images, manifest rows)`, with
`prepare()` loading the model only when a shard has work left."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..seeding import derive_seed
from .pipelines import _generate_with_retries, load_pipeline, resolved_revision
from .plan import GenerationError, ImageSpec, retry_seed
from .spec import StrategySpec
from .speedups import apply_cache, speedup_label


def load_source_images(batch: list[ImageSpec], size: tuple[int, int] | None = None) -> list:
    """The real images an image-conditioned batch starts from (RGB, optionally resized)."""
    from PIL import Image

    from ..images import open_rgb

    images = []
    for s in batch:
        try:
            im = open_rgb(s.source)
            images.append(im.resize(size, Image.Resampling.BICUBIC) if size else im)
        except OSError as err:
            raise GenerationError(f"cannot read source image {s.source} ({err}); fix or remove it and "
                                  "re-index the dataset") from None
    return images


# The image-variation model card's (lambdalabs/sd-image-variations-diffusers v2.0) and the paper's
# preprocessing of the conditioning image: squash to the encoder's size (224) with bicubic
# interpolation and no antialiasing, then CLIP normalisation. The pipeline's own CLIPImageProcessor
# (antialiased short-side resize and centre crop) differs, and the card says that matters a lot.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
VARIATION_PREPROCESSING = "squash to {size}x{size}, bicubic, antialias=False, CLIP normalisation (model card)"


def variation_conditioning(images: list, size: int = 224):
    """The conditioning tensor (N, 3, size, size) of RGB PIL images, as the model card builds it:
    ToTensor, Resize((size, size), bicubic, antialias=False), Normalize(CLIP mean, std)."""
    import torch
    from torchvision import transforms

    transform = transforms.Compose([
        transforms.ToTensor(),
        transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BICUBIC, antialias=False),
        transforms.Normalize(CLIP_MEAN, CLIP_STD),
    ])
    return torch.stack([transform(im) for im in images])


def _pick(value, pending: list[int]):
    """The pending images' share of one pipeline argument (lists and tensors are per image)."""
    import torch

    if isinstance(value, list):
        return [value[i] for i in pending]
    if torch.is_tensor(value):  # batch first
        return value[pending]
    return value


PAD_SEED = 0  # the padding images' noise: any fixed seed; they are never kept


def pad_batch(pending: list[int], generators: list, batch_size: int, device: str) -> tuple[list[int], list]:
    """`pending` and its generators filled to `batch_size` with copies of the last image under
    fresh generators, appended after the real ones (whose noise is drawn first, so unchanged)."""
    import torch

    extra = max(0, batch_size - len(pending))
    return (pending + pending[-1:] * extra,
            generators + [torch.Generator(device).manual_seed(PAD_SEED) for _ in range(extra)])


def _required(spec: StrategySpec, key: str) -> str:
    value = getattr(spec, key)
    if not value:
        raise GenerationError(f"a {spec.kind} strategy needs '{key}'")
    return value


def adapter_label(adapter: Mapping) -> str:
    """How a manifest names the adapter an image was made with: id[@revision][/weight name] x scale."""
    label = str(adapter["id"]) + (f"@{adapter['revision']}" if adapter.get("revision") else "")
    label += f"/{adapter['weight_name']}" if adapter.get("weight_name") else ""
    return f"{label} x {float(adapter.get('scale', 1.0)):g}"


class DiffusersRenderer:
    """A diffusers pipeline, one generator per image, NaN/black/flagged images regenerated."""

    def __init__(self, spec: StrategySpec, wnids: list[str], device: str):
        self.spec, self.wnids, self.device = spec, wnids, device
        self.pipe, self.revision, self.reseed_cache = None, "", None
        self.speedups = speedup_label(spec.fuse_qkv, spec.cache)
        # A compiled denoiser recompiles (minutes, with max-autotune) for each new batch shape: a
        # shard's short last batch and its regenerations are padded to batch_size instead.
        self.static_batch = bool(spec.compile) and device.startswith("cuda")

    def prepare(self) -> None:
        s = self.spec
        self.pipe = load_pipeline(_required(s, "model_id"), s.revision, s.pipeline, s.scheduler, s.dtype,
                                  self.device, s.safety_checker, s.compile, adapter=s.adapter,
                                  scheduler_config=s.scheduler_config, fuse_qkv=s.fuse_qkv)
        self.reseed_cache = apply_cache(self.pipe, s.cache)
        self.revision = resolved_revision(self.pipe, s.revision)  # a hub model's commit, when config names none

    def settings(self) -> dict:
        """What the images depend on beyond the strategy's own keys (see generate_shard)."""
        return {}

    def inputs(self, batch: list[ImageSpec]) -> tuple[dict, list[dict]]:
        """Pipeline keyword arguments for the batch (lists and tensors indexed like it) and per-image rows."""
        raise NotImplementedError

    def __call__(self, batch: list[ImageSpec]):
        s = self.spec
        kwargs, rows = self.inputs(batch)
        common = {"num_inference_steps": s.steps, "guidance_scale": s.guidance, "output_type": "np"}

        def call(pending, generators):
            if self.static_batch:
                pending, generators = pad_batch(pending, generators, s.batch_size, self.device)
            picked = {k: _pick(v, pending) for k, v in kwargs.items()}
            self.reseed_cache(generators[0].initial_seed())
            return self.pipe(**picked, **common, generator=generators)  # padding's images come last, unread

        images, attempts, reasons = _generate_with_retries(call, [b.seed for b in batch], self.device)
        scheduler = s.scheduler or type(self.pipe.scheduler).__name__
        for row, b, attempt, reason in zip(rows, batch, attempts, reasons):
            row.update(seed=retry_seed(b.seed, attempt), attempt=attempt, regenerated_because=reason,
                       model=s.model_id, revision=self.revision, pipeline=s.pipeline,
                       scheduler=scheduler, steps=s.steps, guidance=s.guidance)
            if s.adapter:  # only then: other strategies' manifests keep their columns
                row["adapter"] = adapter_label(s.adapter)
            if self.speedups:
                row["speedups"] = self.speedups
        return images, rows


class ClassLabelRenderer(DiffusersRenderer):
    """Text-to-image from a seeded template of the class name (any diffusers text-to-image pipeline);
    with `captions` (a wnid,caption file), templates may use {caption}: one of the class's, seeded."""

    def __init__(self, spec, wnids, device):
        from .. import prompts

        super().__init__(spec, wnids, device)
        try:
            self.prompter = prompts.Prompter(spec.prompt_templates(), wnids, spec.class_names, spec.places,
                                             spec.captions)
        except ValueError as err:  # a captions file that does not cover the classes
            raise GenerationError(f"strategies.*.captions: {err}") from None
        if not spec.captions and any("caption" in prompts.template_fields(t) for t in self.prompter.templates):
            raise GenerationError(f"a {spec.kind} template uses {{caption}} but the strategy has no captions file")

    def settings(self):
        """The captions drawn from (by content: an edited file re-renders); nothing without captions."""
        from ..captions import digest

        return {"captions_sha256": digest(self.prompter.captions)} if self.prompter.captions else {}

    def caption_of(self, item: ImageSpec):
        """The image's own caption (text, source), or None: one of its class's is drawn."""
        return None

    def prompts_for(self, batch):
        """(templates, prompts, rows' caption fields) of the batch."""
        made = [self.prompter.compose(b.wnid, b.seed, self.caption_of(b)) for b in batch]
        return ([template for template, _, _ in made], [text for _, text, _ in made],
                [{"caption_source": source} if source else {} for _, _, source in made])

    def inputs(self, batch):
        templates, texts, extra = self.prompts_for(batch)
        size = {"height": self.spec.height, "width": self.spec.width}
        rows = [{"prompt": p, "template": t, **size, **e} for p, t, e in zip(texts, templates, extra)]
        return {"prompt": texts, **size}, rows


class Img2ImgRenderer(ClassLabelRenderer):
    """The real image, noised to `strength`, denoised towards its class prompt."""

    def inputs(self, batch):
        templates, texts, extra = self.prompts_for(batch)
        size = (self.spec.width, self.spec.height)
        strength = self.spec.strength
        rows = [{"prompt": p, "template": t, "strength": strength, "width": size[0], "height": size[1], **e}
                for p, t, e in zip(texts, templates, extra)]
        return {"prompt": texts, "image": load_source_images(batch, size), "strength": strength}, rows


class CaptionRenderer(ClassLabelRenderer):
    """Text-to-image from each real image's caption (Real-Fake, SynCLR): `captions` is a path,caption
    file of the real train images (genrobust.captions), read once for the shard's own images
    (plan); templates hold {caption} and may name the class with {}. The image is labelled with
    its real image's class."""

    def __init__(self, spec, wnids, device):
        from .. import prompts

        DiffusersRenderer.__init__(self, spec, wnids, device)
        self.path = _required(spec, "captions")
        self.prompter = prompts.Prompter(spec.prompt_templates(), wnids, spec.class_names, spec.places)
        lacking = [t for t in self.prompter.templates if "caption" not in prompts.template_fields(t)]
        if lacking:
            raise GenerationError(f"a captions strategy's templates must each hold {{caption}}; "
                                  f"{lacking[0]!r} does not")
        self.captions: dict[str, tuple[str, str]] = {}
        self.sources: list[str] = []

    def plan(self, items: list[ImageSpec]) -> None:
        """Read the captions of this shard's real images (the file may hold 1.28M rows): all must have one."""
        from ..captions import read_image_captions

        self.sources = list(dict.fromkeys(s.source for s in items))
        try:
            self.captions = read_image_captions(self.path, self.sources)
        except ValueError as err:
            raise GenerationError(f"strategies.*.captions: {err}") from None

    def settings(self):
        """The shard's own captions (an edit re-renders the shards whose images it touches)."""
        from ..captions import digest

        return {"captions_sha256": digest([[self.captions[s][1], self.captions[s][0]] for s in self.sources])}

    def caption_of(self, item):
        caption, key = self.captions[item.source]
        return caption, f"{self.path}#{key}"


class ImageVariationRenderer(DiffusersRenderer):
    """Variations of the real image through its CLIP image embedding. The conditioning image is
    prepared as the model card and the paper's code do (variation_conditioning) and passed as a
    tensor, which the pipeline hands to its image encoder without its feature extractor."""

    def settings(self):
        return {"conditioning": "model card"}

    def inputs(self, batch):
        size = {"height": self.spec.height, "width": self.spec.width}
        encoder_size = self.pipe.image_encoder.config.image_size  # 224 for the lambdalabs model
        conditioning = variation_conditioning(load_source_images(batch), encoder_size)
        note = VARIATION_PREPROCESSING.format(size=encoder_size)
        return {"image": conditioning, **size}, [{**size, "preprocessing": note} for _ in batch]


class ClassConditionalRenderer(DiffusersRenderer):
    """A class-conditional model trained on ImageNet only (DiTPipeline: ImageNet class ids), the
    stand-in for the paper's CompVis cin256-v2 LDM; config pins its sampler to the paper's (DDIM,
    20 steps, scale 3). DiTPipeline calls the scheduler's step without eta, so DDIM runs with eta 0."""

    def inputs(self, batch):
        from ..datasets import imagenet_wnids

        index = {w: i for i, w in enumerate(imagenet_wnids())}
        ids = [index[b.wnid] for b in batch]
        return {"class_labels": ids}, [{"class_id": i} for i in ids]


class DeepAugmentRenderer:
    """DeepAugment: the real image through EDSR or CAE with seeded weight/activation perturbations,
    at the original's input scales (short side 128 into EDSR, 512 into the CAE) unless the strategy
    sets others; each copy keeps its source's size and aspect."""

    def __init__(self, spec: StrategySpec, wnids: list[str], device: str):
        self.spec, self.device, self.nets = spec, device, None

    def settings(self):
        return {"edsr_input_size": self.spec.edsr_input_size, "cae_input_size": self.spec.cae_input_size,
                "aspect": "kept"}

    def prepare(self):
        from ..baselines import load_deepaugment_nets

        self.nets = load_deepaugment_nets(_required(self.spec, "weights"), self.device)

    def __call__(self, batch):
        from ..baselines import deepaugment

        s = self.spec
        images = deepaugment(load_source_images(batch), [b.seed for b in batch], self.nets, self.device,
                             edsr_input_size=s.edsr_input_size, cae_input_size=s.cae_input_size)
        note = f"short side {s.edsr_input_size or 'own'} into EDSR, {s.cae_input_size or 'own'} into the CAE"
        return images, [{"seed": b.seed, "attempt": 0, "model": s.weights, "preprocessing": note} for b in batch]


class PixMixRenderer:
    """PixMix: the real image mixed with seeded augmentations of itself and of mixing pictures."""

    def __init__(self, spec: StrategySpec, wnids: list[str], device: str):
        self.spec, self.pictures = spec, None

    def settings(self):
        return {"aspect": "kept"}

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
    "captions": CaptionRenderer,
    "image_variation": ImageVariationRenderer,
    "class_conditional": ClassConditionalRenderer,
    "deepaugment": DeepAugmentRenderer,
    "pixmix": PixMixRenderer,
}
