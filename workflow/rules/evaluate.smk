# Accuracy of every trained model on every test set of its dataset, one job per pair.


rule evaluate_model:
    input:
        unpack(id_subset_indices),
        model=f"{OUT}/train/{{dataset}}/mix~{{mix}}/arch~{{arch}}/seed~{{seed}}/model.pt",
        index=f"{OUT}/index/test/{{test_set}}.csv",
    output:
        ensure(f"{OUT}/eval/{{dataset}}/mix~{{mix}}/arch~{{arch}}/seed~{{seed}}/{{test_set}}.json", non_empty=True),
    params:
        cli=GENROBUST,
        subsets=id_subset_args,
        border=border_crop,
        options=json.dumps(config["evaluation"]),
    log:
        f"{OUT}/logs/evaluate_model/{{dataset}}/{{mix}}-{{arch}}-{{seed}}-{{test_set}}.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate_model/{{dataset}}/{{mix}}-{{arch}}-{{seed}}-{{test_set}}.tsv"
    threads: 8
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=120,
    conda:
        ENV
    shell:
        "{params.cli} evaluate --model {input.model} --index {input.index} --test-set {wildcards.test_set} "
        "--border-crop {params.border} --options {params.options:q} {params.subsets} --threads {threads} "
        "--out {output} 2> {log}"
