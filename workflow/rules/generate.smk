# Generation fans out into planned shards (counts from config, no checkpoints), one GPU job each,
# then gathers one manifest per generated dataset (dataset x strategy x split).


rule generate_shard:
    input:
        unpack(generation_inputs),
    output:
        f"{OUT}/generate/{{dataset}}/{{strategy}}/{{split}}/shard~{{shard}}/manifest.csv",
    log:
        f"{OUT}/logs/generate_shard/{{dataset}}/{{strategy}}-{{split}}-{{shard}}.log",
    benchmark:
        f"{OUT}/benchmarks/generate_shard/{{dataset}}/{{strategy}}-{{split}}-{{shard}}.tsv"
    conda:
        ENV
    threads: 8
    resources:
        **GPU_JOB,
        mem_mb=shard_mem_mb,
        runtime=shard_runtime,
    params:
        cli=GENROBUST,
        spec=strategy_spec,
        real_index=real_index_arg,
    shell:
        "{params.cli} generate-shard --spec {params.spec:q} --strategy {wildcards.strategy} "
        "--split {wildcards.split} --shard {wildcards.shard} {params.real_index} --threads {threads} "
        "--out {output:q} 2> {log:q}"


rule gather_generated:
    input:
        shard_manifests,
    output:
        manifest=f"{OUT}/generate/{{dataset}}/{{strategy}}/{{split}}/manifest.csv",
        summary=f"{OUT}/generate/{{dataset}}/{{strategy}}/{{split}}/summary.json",
    log:
        f"{OUT}/logs/gather_generated/{{dataset}}/{{strategy}}-{{split}}.log",
    localrule: True
    conda:
        ENV
    threads: 1
    params:
        cli=GENROBUST,
    shell:
        "{params.cli} gather --out {output.manifest:q} --summary {output.summary:q} {input:q} 2> {log:q}"


rule make_contact_sheet:
    input:
        unpack(contact_sheet_manifests),
        real=f"{OUT}/index/{{dataset}}/train.csv",
    output:
        report(f"{OUT}/figure6_{{dataset}}.png", caption="../report/contact_sheet.rst", category="Figure 6"),
    log:
        f"{OUT}/logs/make_contact_sheet/{{dataset}}.log",
    localrule: True
    conda:
        ENV
    threads: 1
    params:
        cli=GENROBUST,
        manifests=contact_sheet_args,
        seed=STUDY.seed,
    shell:
        "{params.cli} contact-sheet --real {input.real:q} {params.manifests} --seed {params.seed} "
        "--title {wildcards.dataset:q} --out {output:q} 2> {log:q}"
