# Fine-tuning a base model on a real train set (config models.<name>.finetune; the paper's Table 6):
# the dataset's index -> finetune_model -> <out>/finetune/<name>, the id of model <name>, so the
# generation of a strategy whose model it is waits for this job. Checkpoints go to
# <out>/finetune/<name>.checkpoints, outside the declared output: a preempted job that is re-run
# resumes from the last one. More GPUs: set-resources: {finetune_model: {gpu: N}} (torchrun).


rule finetune_model:
    input:
        unpack(finetune_inputs),
    output:
        directory(f"{OUT}/finetune/{{model}}"),
    log:
        f"{OUT}/logs/finetune_model/{{model}}.log",
    benchmark:
        f"{OUT}/benchmarks/finetune_model/{{model}}.tsv"
    conda:
        ENV
    threads: 8
    resources:
        **GPU_JOB,
        mem_mb=finetune_mem_mb,
        runtime=finetune_runtime,
    params:
        cli=finetune_launcher,
        base=finetune_base_args,
        recipe=finetune_recipe,
        checkpoints=finetune_checkpoint_dir,
        seed=STUDY.seed,
    shell:
        "{params.cli} finetune {params.base} --recipe {params.recipe:q} --index {input.index:q} "
        "--seed {params.seed} --checkpoints {params.checkpoints:q} --threads {threads} --out {output:q} 2> {log:q}"
