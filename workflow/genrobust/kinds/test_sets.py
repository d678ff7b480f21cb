"""The test-set kinds: how each is laid out on disk and how its accuracy is read.

A new kind is one `TEST_SETS.register(TestSetKind(...))` here, its indexer in datasets.py
(`TEST_SET_INDEXERS`) and its test."""

from __future__ import annotations

from dataclasses import dataclass

from .registry import Registry


@dataclass(frozen=True)
class TestSetKind:
    name: str
    images_per_class: int  # test images per ImageNet-1K class at full size (sizes, costs, rehearsal)
    classes: int  # the classes a complete copy has its images in
    # Covers a subset of ImageNet's classes: its ID accuracy (for effective robustness) is val accuracy
    # on that subset, measured in the same pass as val itself, named '<id set>@<test set>'.
    id_subset: bool = False
    own_classes: bool = False  # its own class folders, each mapped to one or more ImageNet classes
    corruptions: bool = False  # images per corruption and severity (options severities, corruptions)
    border_crop_px: int = 0  # cropped from each side before any preprocessing (ObjectNet's thin border)
    mapped_wnids: int = 0  # own_classes: the ImageNet classes its own classes map to

    @property
    def complete_wnids(self) -> int:
        """The ImageNet classes a complete copy's images are labelled with (datasets.write_test_set_index)."""
        return self.mapped_wnids or self.classes

    @property
    def options(self) -> tuple[str, ...]:
        """The indexing options test_sets.<name> may set."""
        return ("severities", "corruptions") if self.corruptions else ()


TEST_SETS: Registry[TestSetKind] = Registry("test set")
for _kind in (
    TestSetKind("imagenet", 51, 1000),  # val, and ImageNet-Sketch (same layout)
    TestSetKind("imagenet_r", 30, 200, id_subset=True),
    TestSetKind("imagenet_v2", 10, 1000),
    TestSetKind("objectnet", 19, 113, id_subset=True, own_classes=True, border_crop_px=2, mapped_wnids=125),
    TestSetKind("imagenet_c", 50, 1000, corruptions=True),
):
    TEST_SETS.register(_kind)
