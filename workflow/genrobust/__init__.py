"""genrobust: robust image classification with generated datasets, as a Snakemake workflow.

One module per stage of the DAG (see docs/design.md): datasets, prompts, generate, beton, train,
evaluate, robustness, report; `cli` is the single entry point the rules call.
"""

__version__ = "0.3.0"
