# Real datasets are indexed once into manifests (no rule globs a big folder at DAG time).
# The demo draws its own "real" data and builds tiny random-weight models.


if DEMO:

    rule make_demo_data:
        output:
            f"{DEMO['data']}/demo_data.json",
        log:
            f"{OUT}/logs/make_demo_data.log",
        benchmark:
            f"{OUT}/benchmarks/make_demo_data.tsv"
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=demo_mem_mb,
            runtime=demo_runtime,
        params:
            cli=DEMO_CLI,
            root=parent_folder,
            demo=json.dumps(DEMO, sort_keys=True),
            seed=STUDY.seed,
        shell:
            "{params.cli} data --out {params.root:q} --spec {params.demo:q} --seed {params.seed} 2> {log:q}"

    rule build_demo_models:
        output:
            f"{DEMO['models']}/models.json",
        log:
            f"{OUT}/logs/build_demo_models.log",
        benchmark:
            f"{OUT}/benchmarks/build_demo_models.tsv"
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=demo_mem_mb,
            runtime=demo_runtime,
        params:
            cli=DEMO_CLI,
            root=parent_folder,
            seed=STUDY.seed,
        shell:
            "{params.cli} models --out {params.root:q} --seed {params.seed} 2> {log:q}"

    rule build_demo_metric_models:
        output:
            f"{DEMO['models']}/metrics/metric_models.json",
        log:
            f"{OUT}/logs/build_demo_metric_models.log",
        benchmark:
            f"{OUT}/benchmarks/build_demo_metric_models.tsv"
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=demo_mem_mb,
            runtime=demo_runtime,
        params:
            cli=DEMO_CLI,
            root=parent_folder,
            seed=STUDY.seed,
        shell:
            "{params.cli} metric-models --out {params.root:q} --seed {params.seed} 2> {log:q}"


rule index_dataset:
    input:
        dataset_source_inputs,
    output:
        f"{OUT}/index/{{dataset}}/{{split}}.csv",
    log:
        f"{OUT}/logs/index_dataset/{{dataset}}-{{split}}.log",
    benchmark:
        f"{OUT}/benchmarks/index_dataset/{{dataset}}-{{split}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=index_mem_mb,
        runtime=index_runtime,
    params:
        cli=GENROBUST,
        root=dataset_root,
        classes=dataset_classes,
        options=dataset_index_options,
    shell:
        "{params.cli} index-dataset --root {params.root:q} --classes {params.classes:q} {params.options} "
        "--out {output:q} 2> {log:q}"


rule index_test_set:
    input:
        test_set_source_inputs,
    output:
        f"{OUT}/index/test/{{test_set}}.csv",
    log:
        f"{OUT}/logs/index_test_set/{{test_set}}.log",
    benchmark:
        f"{OUT}/benchmarks/index_test_set/{{test_set}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=index_mem_mb,
        runtime=index_test_runtime,
    params:
        cli=GENROBUST,
        kind=test_set_kind,
        root=test_set_root,
        options=test_set_options,
    shell:
        "{params.cli} index-test-set --kind {params.kind:q} --root {params.root:q} {params.options} --out {output:q} 2> {log:q}"
