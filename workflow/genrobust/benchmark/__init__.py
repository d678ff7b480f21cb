"""Throughput benchmarks: how many images/s the target machine generates and trains on.

`generation` times the diffusers pipelines (full-size architectures with random weights, or the
demo's tiny folders) and where their time goes; `training` times the training loaders (FFCV vs
plain PyTorch) and training steps. Each is one CLI subcommand (`python -m genrobust
benchmark-generation ...`, `benchmark-training ...`) and an optional rule in analysis.smk
(config `benchmarks:`). `system` holds what both record about the machine, `report` the tables
they print, `synthetic` the images they draw. Nothing here imports torch at module level: the CLI
imports the parsers on every call.
"""
