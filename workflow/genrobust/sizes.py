"""How many images each set of a study holds at full scale: the counts that job sizes
(workflow/rules/resources.smk), the rehearsal's stand-ins and the scale benchmark share."""

from __future__ import annotations

from .kinds import TEST_SETS

# ImageNet's train and val images per class (the paper's "100% = 130K" for ImageNet-100;
# ImageNet-1K train has 1,281,167).
REAL_PER_CLASS = {"train": 1300, "val": 50}
# Feature widths of the metric extractors: clean-fid's Inception pool3, CLIP ViT-B/32's embedding.
FEATURE_DIMS = {"inception": 2048, "clip": 512}


def test_images_per_own_class(kind: str) -> int:
    """Images per class of the test set itself (ImageNet-R: 150 in each of its 200 classes)."""
    test_set = TEST_SETS[kind]
    return round(test_set.images_per_class * 1000 / test_set.classes)
