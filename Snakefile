# genrobust: "Leaving Reality to Imagination" (Bansal & Grover, 2023) as one workflow.
# Full study:  snakemake --profile slurm   (after make setup; workflow/profiles/slurm; config/config.yaml)
# Offline toy: make demo   (snakemake --profile workflow/profiles/demo: config/demo.yaml, 2 cores)
# The DAG, in order: data -> (finetune ->) generate -> convert -> train -> evaluate -> analysis -> report.

from snakemake.utils import min_version, validate

min_version("9.0")


report: "workflow/report/workflow.rst"


# config/config.yaml unless --configfile names another (which then replaces it, not extends it).
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/share.smk"
include: "workflow/rules/convert.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
