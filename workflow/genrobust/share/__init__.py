"""Sharing generated sets: export one with its provenance, import anyone's as a source.

- `export`: a generated set's manifest and images as parquet shards that Hugging Face `datasets`
  loads (`load_dataset(folder)`) and/or WebDataset tars, with a dataset card (`card`), the
  manifest and SHA256SUMS; one pass over the manifest, memory flat in the set's size.
- `external`: the `external` strategy kind: an ImageFolder tree, a folder of parquet shards or of
  WebDataset tars, checked and turned into a manifest like a generated set's, so betons,
  mixtures and every report take it as they take any other source.
- `formats`: what both sides agree on (file names, the image and label columns, checksums).
"""
