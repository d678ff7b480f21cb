# Every trained model on every test set of its dataset, in one job per model: process start,
# imports and model loading cost more than the smaller shift sets themselves.


rule evaluate_model:
    input:
        unpack(test_set_indices),
        model=f"{OUT}/train/{RUN_DIR}/model.pt",
    output:
        ensure(f"{OUT}/eval/{RUN_DIR}/evaluation.json", non_empty=True),
    log:
        f"{OUT}/logs/evaluate_model/{RUN_DIR}.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate_model/{RUN_DIR}.tsv"
    conda:
        ENV
    threads: 8
    resources:
        **GPU_JOB,
        mem_mb=evaluation_mem_mb,
        runtime=evaluation_runtime,
    params:
        cli=GENROBUST,
        sets=evaluation_set_args,
        options=json.dumps(thawed(STUDY.evaluation), sort_keys=True),
    shell:
        "{params.cli} evaluate --model {input.model:q} {params.sets} --options {params.options:q} "
        "--threads {threads} --out {output:q} 2> {log:q}"
