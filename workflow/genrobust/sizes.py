"""How many images each set of a study holds at full scale: the counts that job sizes
(workflow/rules/resources.smk), the rehearsal's stand-ins and the scale benchmark share."""

from __future__ import annotations

# ImageNet's train and val images per class (the paper's "100% = 130K" for ImageNet-100;
# ImageNet-1K train has 1,281,167).
REAL_PER_CLASS = {"train": 1300, "val": 50}
# Test images per ImageNet-1K class of each test-set kind (ImageNet-R: 30K, ObjectNet: ~18.5K in
# its 113 classes; ImageNet-C: per corruption and severity), scaled by a dataset's classes.
TEST_PER_CLASS = {"imagenet": 51, "imagenet_v2": 10, "imagenet_r": 30, "objectnet": 19, "imagenet_c": 50}
# The classes a complete copy of each kind has its images in (ObjectNet: its folders that map to
# ImageNet classes; they map to 125 ImageNet ids).
TEST_CLASSES = {"imagenet": 1000, "imagenet_v2": 1000, "imagenet_r": 200, "objectnet": 113, "imagenet_c": 1000}
# Feature widths of the metric extractors: clean-fid's Inception pool3, CLIP ViT-B/32's embedding.
FEATURE_DIMS = {"inception": 2048, "clip": 512}


def test_images_per_own_class(kind: str) -> int:
    """Images per class of the test set itself (ImageNet-R: 150 in each of its 200 classes)."""
    return round(TEST_PER_CLASS.get(kind, 50) * 1000 / TEST_CLASSES.get(kind, 1000))
