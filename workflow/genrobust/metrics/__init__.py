"""Analysis metrics of image sets (docs/design.md's `metrics` stage): the paper's Tables 2, 5 and 7.

- `embeddings`: the one place an image set is embedded (one features file per set and
  extractor; every per-class statistic is computed from that cache, never by re-embedding);
- `extractors`: clean-fid's Inception (or a custom TorchScript extractor) and open_clip's CLIP;
- `fid`: per-class FID and KID between two feature sets;
- `clip_scores`: CLIP consistency, diversity, the LAION-style filter and the zero-shot classifier;
- `classify`: per-image top-1 of timm models by name and of the study's own trained runs;
- `filtering`: the CLIP filter as a training-data gate (strategy kind clip_filtered);
- `plan`: which sets, extractors and classifiers each report needs (config only, no torch);
- `reports`: Tables 2, 5 and 7 and the real-vs-generated accuracy scatter.

Light to import: the heavy libraries (torch, open_clip, timm, clean-fid) are imported inside
the functions that need them.
"""
