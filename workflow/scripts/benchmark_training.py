#!/usr/bin/env python
"""Training throughput without Snakemake: genrobust.benchmark_training.main with these arguments.

    PYTHONPATH=workflow python workflow/scripts/benchmark_training.py --device cpu --threads 2
    PYTHONPATH=workflow python workflow/scripts/benchmark_training.py --device cuda --arch resnet50 \
        --res 176 --batch-size 256 --precision bf16 --steps 50 --warmup-steps 10 \
        --images 4096 --image-size 256 --epochs 3 --workers 12 --json-out benchmark_training.json
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # workflow/, if PYTHONPATH is not set

from genrobust.benchmark_training import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
