# Every trained model on every test set of its dataset, in one job per model: process start,
# imports and model loading cost more than the smaller shift sets themselves.


rule evaluate_model:
    input:
        unpack(test_set_indices),
        model=f"{OUT}/train/{{dataset}}/mix~{{mix}}/arch~{{arch}}/seed~{{seed}}/model.pt",
    output:
        ensure(f"{OUT}/eval/{{dataset}}/mix~{{mix}}/arch~{{arch}}/seed~{{seed}}/evaluation.json", non_empty=True),
    params:
        cli=GENROBUST,
        sets=evaluation_set_args,
        options=json.dumps(config["evaluation"]),
    log:
        f"{OUT}/logs/evaluate_model/{{dataset}}/{{mix}}-{{arch}}-{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate_model/{{dataset}}/{{mix}}-{{arch}}-{{seed}}.tsv"
    threads: 8
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=240,
    conda:
        ENV
    shell:
        "{params.cli} evaluate --model {input.model} {params.sets} --options {params.options:q} "
        "--threads {threads} --out {output} 2> {log}"
