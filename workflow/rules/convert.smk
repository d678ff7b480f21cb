# FFCV betons: one per training source (the real train set, each generated set) and one for
# the val set. A mixture is rows of each of its sources, so no image is written twice however
# many mixtures the study trains, and a strategy added later writes one more beton and
# touches no existing training.


rule write_source_beton:
    input:
        table=source_table,
    output:
        manifest=f"{OUT}/beton/{{dataset}}/train/{{source}}.csv",
        beton=protected(f"{OUT}/beton/{{dataset}}/train/{{source}}.beton"),
    log:
        f"{OUT}/logs/write_source_beton/{{dataset}}-{{source}}.log",
    benchmark:
        f"{OUT}/benchmarks/write_source_beton/{{dataset}}-{{source}}.tsv"
    conda:
        ENV
    threads: 16
    resources:
        mem_mb=source_beton_mem_mb,
        runtime=source_beton_runtime,
    params:
        cli=GENROBUST,
        classes=dataset_classes,
        beton=beton_options,
    shell:
        "{params.cli} write-beton --table {input.table:q} --source {wildcards.source} "
        "--classes {params.classes:q} --options {params.beton:q} --threads {threads} "
        "--out-manifest {output.manifest:q} --out-beton {output.beton:q} 2> {log:q}"


rule write_val_beton:
    input:
        real=f"{OUT}/index/{{dataset}}/val.csv",
    output:
        manifest=f"{OUT}/beton/{{dataset}}/val.csv",
        beton=protected(f"{OUT}/beton/{{dataset}}/val.beton"),
    log:
        f"{OUT}/logs/write_val_beton/{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/write_val_beton/{{dataset}}.tsv"
    conda:
        ENV
    threads: 16
    resources:
        mem_mb=val_beton_mem_mb,
        runtime=val_beton_runtime,
    params:
        cli=GENROBUST,
        classes=dataset_classes,
        beton=beton_options,
    shell:
        "{params.cli} write-beton --table {input.real:q} --source real --classes {params.classes:q} "
        "--options {params.beton:q} --threads {threads} "
        "--out-manifest {output.manifest:q} --out-beton {output.beton:q} 2> {log:q}"


rule sample_mixture:
    input:
        unpack(mixture_tables),
    output:
        f"{OUT}/mix/{{dataset}}/mix~{{mix}}.csv",
    log:
        f"{OUT}/logs/sample_mixture/{{dataset}}/{{mix}}.log",
    localrule: True
    conda:
        ENV
    threads: 1
    params:
        cli=GENROBUST,
        seed=STUDY.seed,
        tables=mixture_table_args,
    shell:
        "{params.cli} sample-mixture {params.tables} --mix {wildcards.mix:q} --seed {params.seed} "
        "--out {output:q} 2> {log:q}"
