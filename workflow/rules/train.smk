# One job per (dataset, mixture, architecture, seed), reading the betons of the mixture's own
# sources only. The checkpoint lives outside the declared outputs, so a preempted job that is
# re-run resumes from its last epoch.


rule train_classifier:
    input:
        unpack(training_inputs),
    output:
        model=protected(f"{OUT}/train/{RUN_DIR}/model.pt"),
        metrics=ensure(f"{OUT}/train/{RUN_DIR}/metrics.jsonl", non_empty=True),
        run=f"{OUT}/train/{RUN_DIR}/run.json",
    log:
        f"{OUT}/logs/train_classifier/{RUN_DIR}.log",
    benchmark:
        f"{OUT}/benchmarks/train_classifier/{RUN_DIR}.tsv"
    conda:
        ENV
    threads: 16
    resources:
        **GPU_JOB,
        mem_mb=training_mem_mb,
        runtime=training_runtime,
    params:
        cli=train_launcher,
        recipe=recipe_json,
        classes=dataset_classes,
        checkpoint=checkpoint_path,
        sources=training_source_args,
    shell:
        "{params.cli} train {params.sources} --mixture {input.mixture:q} "
        "--val-beton {input.val_beton:q} --val-manifest {input.val_manifest:q} --classes {params.classes:q} "
        "--arch {wildcards.arch} --seed {wildcards.seed} --recipe {params.recipe:q} --threads {threads} "
        "--checkpoint {params.checkpoint:q} --out-model {output.model:q} --out-metrics {output.metrics:q} --out-run {output.run:q} 2> {log:q}"
