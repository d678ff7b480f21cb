# Generation fans out into planned shards (counts from config, no checkpoints), one GPU job each,
# then gathers one manifest per generated dataset (dataset x strategy x split).


rule generate_shard:
    input:
        generation_model_inputs,
    output:
        f"{OUT}/generate/{{dataset}}/{{strategy}}/{{split}}/shard~{{shard}}/manifest.csv",
    params:
        cli=GENROBUST,
        spec=strategy_spec,
    log:
        f"{OUT}/logs/generate_shard/{{dataset}}/{{strategy}}-{{split}}-{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/generate_shard/{{dataset}}/{{strategy}}-{{split}}-{{shard}}.tsv"
    threads: 4
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=720,
    conda:
        ENV
    shell:
        "{params.cli} generate-shard --spec {params.spec:q} --strategy {wildcards.strategy} "
        "--split {wildcards.split} --shard {wildcards.shard} --out {output} 2> {log}"


rule gather_generated:
    input:
        shard_manifests,
    output:
        f"{OUT}/generate/{{dataset}}/{{strategy}}/{{split}}/manifest.csv",
    params:
        cli=GENROBUST,
    log:
        f"{OUT}/logs/gather_generated/{{dataset}}/{{strategy}}-{{split}}.log",
    conda:
        ENV
    localrule: True
    shell:
        "{params.cli} gather --out {output} {input} 2> {log}"
