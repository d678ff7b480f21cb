# The paper's analysis outputs (Tables 2, 5, 7, the real-vs-generated scatter) and the CLIP
# filter as a training-data gate (workflow/genrobust/metrics/). Image sets are embedded once per
# extractor, one job per (extractor, dataset) or per extractor for the test sets, split by the
# reports that need each set (metrics/plan.py embedding_groups); every
# per-class statistic is then computed from those features. Classifiers score real and
# generated val per image, one job per classifier; reports are CPU reductions.


include: "metrics_common.smk"


for rule_name, group in EMBED_GROUPS.items():

    rule:
        name:
            rule_name
        input:
            tables=[table for table, _ in group["sets"].values()],
            models=metric_model_inputs(*extractor_models(group["extractor"])),
        output:
            metrics_plan.group_outputs(STUDY.config, group),
        log:
            f"{OUT}/logs/{rule_name}.log",
        benchmark:
            f"{OUT}/benchmarks/{rule_name}.tsv"
        conda:
            ENV
        threads: 8
        resources:
            **GPU_JOB,
            mem_mb=GPU_JOB_MB,
            runtime=embed_runtime(group),
        params:
            cli=GENROBUST,
            extractor=group["extractor"],
            spec=embed_spec(group["extractor"]),
            sets=group_set_args(group),
            text=group_text_args(group),
            seed=STUDY.seed,
        shell:
            "{params.cli} embed --extractor {params.extractor} --spec {params.spec:q} {params.sets} {params.text} "
            "--seed {params.seed} --threads {threads} 2> {log:q}"


rule predict_timm:
    input:
        unpack(predictions_sets),
        models=timm_model_inputs,
    output:
        f"{metrics_plan.PREDICTIONS_DIR.format(out=OUT, dataset='{dataset}', strategy='{strategy}')}/timm/{{model}}.csv",
    log:
        f"{OUT}/logs/predict_timm/{{dataset}}/{{strategy}}-{{model}}.log",
    benchmark:
        f"{OUT}/benchmarks/predict_timm/{{dataset}}/{{strategy}}-{{model}}.tsv"
    wildcard_constraints:
        model="|".join(map(re.escape, TIMM_MODELS)) or "(?!)",
    conda:
        ENV
    threads: 8
    resources:
        **GPU_JOB,
        mem_mb=GPU_JOB_MB,
        runtime=predictions_runtime,
    params:
        cli=GENROBUST,
        model=timm_model_args,
        sets=predictions_set_args,
        batch=(METRICS.get("classify") or {}).get("batch_size", 64),
    shell:
        "{params.cli} classify-images {params.model} {params.sets} --batch-size {params.batch} --threads {threads} "
        "--out {output:q} 2> {log:q}"


rule predict_run:
    input:
        unpack(predictions_sets),
        model=f"{OUT}/train/{RUN_DIR}/model.pt",
    output:
        metrics_plan.run_prediction_pattern(OUT),
    log:
        f"{OUT}/logs/predict_run/{{dataset}}/{{strategy}}-{{mix}}-{{arch}}-{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/predict_run/{{dataset}}/{{strategy}}-{{mix}}-{{arch}}-{{seed}}.tsv"
    conda:
        ENV
    threads: 8
    resources:
        **GPU_JOB,
        mem_mb=GPU_JOB_MB,
        runtime=predictions_runtime,
    params:
        cli=GENROBUST,
        sets=predictions_set_args,
        evaluation=json.dumps(thawed(STUDY.evaluation), sort_keys=True),
        batch=STUDY.evaluation["batch_size"],
    shell:
        "{params.cli} classify-images --model {input.model:q} --evaluation {params.evaluation:q} {params.sets} "
        "--batch-size {params.batch} --threads {threads} --out {output:q} 2> {log:q}"


# A clip_filtered source is its source's images passing the CLIP filter (nothing generated); its
# manifest is where a generated one would be, so betons and mixtures take from it like any other.
ruleorder: filter_generated > gather_generated


rule filter_generated:
    input:
        unpack(filtered_source),
    output:
        manifest=f"{OUT}/generate/{{dataset}}/{{strategy}}/{{split}}/manifest.csv",
        summary=f"{OUT}/generate/{{dataset}}/{{strategy}}/{{split}}/summary.json",
    log:
        f"{OUT}/logs/filter_generated/{{dataset}}/{{strategy}}-{{split}}.log",
    wildcard_constraints:
        strategy="|".join(sorted({s for _, s, _ in FILTERED})) or "(?!)",
    localrule: True
    conda:
        ENV
    threads: 1
    params:
        cli=GENROBUST,
        features=lambda wildcards, input: input.features.removesuffix(".npy"),
        threshold=lambda wildcards: STUDY.strategies[wildcards.strategy].settings.get("threshold", 0.3),
        clip=embed_spec("clip"),  # what the features and texts were made with (they are ancient inputs)
    shell:
        "{params.cli} filter-generated --manifest {input.manifest:q} --features {params.features:q} --text {input.text:q} "
        "--threshold {params.threshold} --source {wildcards.strategy} --out-manifest {output.manifest:q} "
        "--out-summary {output.summary:q} 2> {log:q}"


for name, spec in METRIC_REPORTS.items():

    rule:
        name:
            f"make_{name}"
        input:
            metrics_plan.input_files(metrics_plan.report_inputs(STUDY.config, name)),
        output:
            table=report(f"{OUT}/{name}.csv", caption=f"../report/{spec['kind']}.rst", category=report_category(name)),
            figure=report(report_figure(name), caption=f"../report/{spec['kind']}.rst", category=report_category(name)),
            display=report_display(name),
        log:
            f"{OUT}/logs/make_{name}.log",
        localrule: not STUDY.reports[name].kind.cluster_job
        conda:
            ENV
        threads: metric_report_threads(name)
        resources:
            mem_mb=lambda wildcards, attempt: _megabytes(CPU_JOB_MB, attempt),
            runtime=metric_report_runtime(name),
        params:
            cli=GENROBUST,
            kind=spec["kind"],
            spec=report_spec(name, seed=STUDY.seed),
            inputs=json.dumps(metrics_plan.report_inputs(STUDY.config, name), sort_keys=True),
        shell:
            "{params.cli} metrics-report --kind {params.kind:q} --spec {params.spec:q} --inputs {params.inputs:q} "
            "--out-table {output.table:q} --out-figure {output.figure:q} --out-display {output.display:q} 2> {log:q}"


# Optional (config `benchmarks: embedding:`): the extractors' images/s on a GPU node.
rule benchmark_embedding:
    output:
        f"{OUT}/benchmarks/embedding.json",
    log:
        f"{OUT}/logs/benchmark_embedding.log",
    conda:
        ENV
    threads: 8
    resources:
        **GPU_JOB,
        mem_mb=32000,
        runtime=60,
    params:
        cli=GENROBUST,
        options=json.dumps(thawed(STUDY.config.get("benchmarks", {}).get("embedding", {})), sort_keys=True),
    shell:
        "{params.cli} benchmark-embedding --options {params.options:q} --threads {threads} "
        "--json-out {output:q} > {log:q} 2>&1"
