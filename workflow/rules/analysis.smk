# Each report's own analysis: the accuracies of exactly its runs, then the effective-robustness
# fit against its reference (its real-only runs and/or published standard models), so that a
# report's target trains and evaluates nothing another report alone needs.


rule collect_accuracy:
    input:
        evaluations=report_evaluations,
    output:
        f"{OUT}/analysis/{{report}}/accuracy.csv",
    log:
        f"{OUT}/logs/collect_accuracy/{{report}}.log",
    localrule: True
    conda:
        ENV
    threads: 1
    params:
        cli=GENROBUST,
    shell:
        "{params.cli} collect --out {output:q} {input.evaluations:q} 2> {log:q}"


rule fit_effective_robustness:
    input:
        accuracy=f"{OUT}/analysis/{{report}}/accuracy.csv",
    output:
        f"{OUT}/analysis/{{report}}/robustness.csv",
    log:
        f"{OUT}/logs/fit_effective_robustness/{{report}}.log",
    localrule: True
    conda:
        ENV
    threads: 1
    params:
        cli=GENROBUST,
        reference=reference_json,
    shell:
        "{params.cli} robustness --accuracy {input.accuracy:q} --reference {params.reference:q} --out {output:q} 2> {log:q}"


# Optional throughput benchmarks of the machine the jobs run on (config `benchmarks:`; rule all
# asks for <out>/benchmarks/<name>.json per key present). No inputs: full-size architectures with
# random weights, and images the benchmark draws itself. The log keeps the printed tables.


rule benchmark_generation:
    output:
        f"{OUT}/benchmarks/generation.json",
    log:
        f"{OUT}/logs/benchmark_generation.log",
    conda:
        ENV
    threads: 8
    resources:
        **GPU_JOB,
        mem_mb=32000,
        runtime=60,
    params:
        cli=GENROBUST,
        options=json.dumps(thawed(STUDY.config.get("benchmarks", {}).get("generation", {})), sort_keys=True),
    shell:
        "{params.cli} benchmark-generation --options {params.options:q} --threads {threads} "
        "--json-out {output:q} > {log:q} 2>&1"


rule benchmark_training:
    output:
        f"{OUT}/benchmarks/training.json",
    log:
        f"{OUT}/logs/benchmark_training.log",
    conda:
        ENV
    threads: 16
    resources:
        **GPU_JOB,
        mem_mb=32000,
        runtime=60,
    params:
        cli=GENROBUST,
        options=json.dumps(thawed(STUDY.config.get("benchmarks", {}).get("training", {})), sort_keys=True),
    shell:
        "{params.cli} benchmark-training --options {params.options:q} --threads {threads} "
        "--json-out {output:q} > {log:q} 2>&1"


rule benchmark_finetune:
    output:
        f"{OUT}/benchmarks/finetune.json",
    log:
        f"{OUT}/logs/benchmark_finetune.log",
    conda:
        ENV
    threads: 8
    resources:
        **GPU_JOB,
        mem_mb=32000,
        runtime=60,
    params:
        cli=GENROBUST,
        options=json.dumps(thawed(STUDY.config.get("benchmarks", {}).get("finetune", {})), sort_keys=True),
    shell:
        "{params.cli} benchmark-finetune --options {params.options:q} --threads {threads} "
        "--json-out {output:q} > {log:q} 2>&1"
