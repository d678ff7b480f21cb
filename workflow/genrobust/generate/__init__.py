"""Generation: planned shards of generated images, resumable, atomic, every image seeded.

A generated dataset (dataset, strategy, split) is a list of images: (class c, k) for every class
in sorted-wnid order and k < per_class, flattened class-major, for the class-conditioned kinds
(class labels, class-conditional DiT); one (or images_per_real) per real image of the split, in
index order, for the image-conditioned kinds (img2img, image variation, DeepAugment, PixMix) and
for text-to-image from each real image's caption (`captions`).
Shard i of S owns the contiguous range [i*N//S, (i+1)*N//S), so shard outputs are known from
config alone (no checkpoints). Each kind is a renderer (RENDERERS) behind one shard runner.

Within a shard, batches are fixed slices of that range, and every image has its own generator
seeded from (global seed, strategy, split, wnid, k). A batch is recorded in `progress.jsonl`
only after all its files are on disk (each written to a temporary name, then renamed). A killed
shard, re-run, skips the recorded batches and recomputes the rest with exactly the same batch
composition, so it ends with exactly the files an uninterrupted run writes.

Modules: `spec` (StrategySpec: a strategy's typed settings, defaults from the config schema),
`plan` (which images, which shard, which seeds), `pipelines` (diffusers loading, retries of
defective images), `renderers` (one per kind), `shard` (the resumable runner and the gather).
"""

from .pipelines import MAX_ATTEMPTS, _generate_with_retries, is_defective, load_pipeline
from .plan import GenerationError, ImageSpec, plan_from_sources, plan_images, plan_shard, retry_seed, shard_range
from .renderers import (RENDERERS, CaptionRenderer, ClassConditionalRenderer, ClassLabelRenderer, DeepAugmentRenderer,
                        DiffusersRenderer, Img2ImgRenderer, ImageVariationRenderer, PixMixRenderer,
                        load_source_images)
from .shard import (MANIFEST_COLUMNS, BackgroundWriter, gather_manifests, generate_class_label_shard,
                    generate_shard, read_progress, run_shard)
from .spec import StrategySpec

__all__ = [
    "BackgroundWriter", "CaptionRenderer", "ClassConditionalRenderer", "ClassLabelRenderer",
    "DeepAugmentRenderer", "DiffusersRenderer", "GenerationError", "ImageSpec", "Img2ImgRenderer",
    "ImageVariationRenderer", "MANIFEST_COLUMNS", "MAX_ATTEMPTS", "PixMixRenderer", "RENDERERS",
    "StrategySpec", "gather_manifests", "generate_class_label_shard", "generate_shard", "is_defective",
    "load_pipeline", "load_source_images", "plan_from_sources", "plan_images", "plan_shard",
    "read_progress", "retry_seed", "run_shard", "shard_range",
]
