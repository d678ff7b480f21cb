# Reduce per-job JSON into one accuracy table per dataset, then fit effective robustness.


rule collect_accuracy:
    input:
        evaluations=dataset_evaluations,
        metrics=dataset_metrics,
    output:
        f"{OUT}/analysis/{{dataset}}/accuracy.csv",
    log:
        f"{OUT}/logs/collect_accuracy/{{dataset}}.log",
    localrule: True
    conda:
        ENV
    params:
        cli=GENROBUST,
    shell:
        "{params.cli} collect --out {output} {input.evaluations} 2> {log}"


rule fit_effective_robustness:
    input:
        accuracy=f"{OUT}/analysis/{{dataset}}/accuracy.csv",
    output:
        f"{OUT}/analysis/{{dataset}}/robustness.csv",
    log:
        f"{OUT}/logs/fit_effective_robustness/{{dataset}}.log",
    localrule: True
    conda:
        ENV
    params:
        cli=GENROBUST,
        spec=json.dumps(config["robustness"] | {"id_test_set": config["evaluation"]["id_test_set"]}),
    shell:
        "{params.cli} robustness --accuracy {input.accuracy} --spec {params.spec:q} --out {output} 2> {log}"


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
        gpu=1,
        mem_mb=32000,
        runtime=60,
    params:
        cli=GENROBUST,
        options=json.dumps(config.get("benchmarks", {}).get("generation", {})),
    shell:
        "{params.cli} benchmark-generation --options {params.options:q} --threads {threads} "
        "--json-out {output} > {log} 2>&1"


rule benchmark_training:
    output:
        f"{OUT}/benchmarks/training.json",
    log:
        f"{OUT}/logs/benchmark_training.log",
    conda:
        ENV
    threads: 16
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=60,
    params:
        cli=GENROBUST,
        options=json.dumps(config.get("benchmarks", {}).get("training", {})),
    shell:
        "{params.cli} benchmark-training --options {params.options:q} --threads {threads} "
        "--json-out {output} > {log} 2>&1"
