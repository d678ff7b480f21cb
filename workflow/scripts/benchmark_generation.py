#!/usr/bin/env python
"""Generation throughput without Snakemake: genrobust.benchmark.main with these arguments.

    PYTHONPATH=workflow python workflow/scripts/benchmark_generation.py --device cuda --dtype float16 \
        --batch-size 16 32 --steps 50 --guidance 7.5 --size 512 --json-out benchmark.json
    PYTHONPATH=workflow python workflow/scripts/benchmark_generation.py --tiny results/demo/models/sd \
        --kind class_labels --batch-size 8 --steps 5 --size 64
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random weights and local folders only
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # workflow/, if PYTHONPATH is not set

from genrobust.benchmark import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
