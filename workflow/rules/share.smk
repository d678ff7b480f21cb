# Sharing generated sets: an export of a planned set (config `exports`: parquet and/or WebDataset
# shards, card, manifest, SHA256SUMS) and the import of anyone's (strategies of kind `external`),
# whose manifest is where a generated one's would be, so betons and mixtures take it like any other.


include: "share_common.smk"


ruleorder: import_set > gather_generated


rule import_set:
    input:
        unpack(external_inputs),
    output:
        manifest=f"{OUT}/generate/{{dataset}}/{{strategy}}/train/manifest.csv",
        summary=f"{OUT}/generate/{{dataset}}/{{strategy}}/train/summary.json",
    log:
        f"{OUT}/logs/import_set/{{dataset}}/{{strategy}}.log",
    wildcard_constraints:
        strategy="|".join(EXTERNAL) or "(?!)",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: _megabytes(CPU_JOB_MB, attempt),
        runtime=share_runtime,
    params:
        cli=GENROBUST,
        options=external_options,
        classes=dataset_classes,
    shell:
        "{params.cli} import-set {params.options} --classes {params.classes:q} --out-manifest {output.manifest:q} "
        "--out-summary {output.summary:q} 2> {log:q}"


rule export_set:
    input:
        unpack(export_manifests),
    output:
        directory(f"{OUT}/export/{{dataset}}/{{strategy}}"),
    log:
        f"{OUT}/logs/export_set/{{dataset}}/{{strategy}}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: _megabytes(CPU_JOB_MB, attempt),
        runtime=export_runtime,
    params:
        cli=GENROBUST,
        options=export_options,
        classes=dataset_classes,
        info=export_info,
    shell:
        "{params.cli} export-set {params.options} --classes {params.classes:q} --info {params.info:q} "
        "--out {output:q} 2> {log:q}"
