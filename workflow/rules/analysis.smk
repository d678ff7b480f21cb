# Reduce per-job JSON into one accuracy table per dataset, then fit effective robustness.


rule collect_accuracy:
    input:
        evaluations=dataset_evaluations,
        metrics=dataset_metrics,
    output:
        f"{OUT}/analysis/{{dataset}}/accuracy.csv",
    params:
        cli=GENROBUST,
    log:
        f"{OUT}/logs/collect_accuracy/{{dataset}}.log",
    conda:
        ENV
    localrule: True
    shell:
        "{params.cli} collect --out {output} {input.evaluations} 2> {log}"


rule fit_effective_robustness:
    input:
        accuracy=f"{OUT}/analysis/{{dataset}}/accuracy.csv",
    output:
        f"{OUT}/analysis/{{dataset}}/robustness.csv",
    params:
        cli=GENROBUST,
        spec=json.dumps(config["robustness"] | {"id_test_set": config["evaluation"]["id_test_set"]}),
    log:
        f"{OUT}/logs/fit_effective_robustness/{{dataset}}.log",
    conda:
        ENV
    localrule: True
    shell:
        "{params.cli} robustness --accuracy {input.accuracy} --spec {params.spec:q} --out {output} 2> {log}"
