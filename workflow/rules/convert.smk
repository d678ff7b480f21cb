# FFCV betons. One training beton per dataset holds the real train set and every generated
# strategy it mixes with (the "pool"); each mixture is an index list into it, so no image is
# written twice however many mixtures the study trains.


rule write_train_beton:
    input:
        unpack(pool_generated_manifests),
        real=f"{OUT}/index/{{dataset}}/train.csv",
    output:
        manifest=f"{OUT}/beton/{{dataset}}/train.csv",
        beton=protected(f"{OUT}/beton/{{dataset}}/train.beton"),
    log:
        f"{OUT}/logs/write_train_beton/{{dataset}}.log",
    benchmark:
        f"{OUT}/benchmarks/write_train_beton/{{dataset}}.tsv"
    conda:
        ENV
    threads: 16
    resources:
        mem_mb=32000,
        runtime=600,
    params:
        cli=GENROBUST,
        generated=pool_generated_args,
        classes=dataset_classes,
        beton=beton_options,
    shell:
        "{params.cli} write-beton --real {input.real} --generated {params.generated} "
        "--classes {params.classes:q} --options {params.beton:q} --threads {threads} "
        "--out-manifest {output.manifest} --out-beton {output.beton} 2> {log}"


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
        mem_mb=16000,
        runtime=120,
    params:
        cli=GENROBUST,
        classes=dataset_classes,
        beton=beton_options,
    shell:
        "{params.cli} write-beton --real {input.real} --classes {params.classes:q} "
        "--options {params.beton:q} --threads {threads} "
        "--out-manifest {output.manifest} --out-beton {output.beton} 2> {log}"


rule sample_mixture:
    input:
        pool=f"{OUT}/beton/{{dataset}}/train.csv",
    output:
        f"{OUT}/mix/{{dataset}}/mix~{{mix}}.csv",
    log:
        f"{OUT}/logs/sample_mixture/{{dataset}}/{{mix}}.log",
    localrule: True
    conda:
        ENV
    params:
        cli=GENROBUST,
        seed=config["seed"],
    shell:
        "{params.cli} sample-mixture --pool {input.pool} --mix {wildcards.mix:q} --seed {params.seed} "
        "--out {output} 2> {log}"
