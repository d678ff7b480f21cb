# One job per (dataset, mixture, architecture, seed). The checkpoint lives outside the declared
# outputs, so a preempted job that is re-run resumes from its last epoch.


rule train_classifier:
    input:
        beton=f"{OUT}/beton/{{dataset}}/train.beton",
        manifest=f"{OUT}/beton/{{dataset}}/train.csv",
        indices=f"{OUT}/mix/{{dataset}}/mix~{{mix}}.csv",
        val_beton=f"{OUT}/beton/{{dataset}}/val.beton",
        val_manifest=f"{OUT}/beton/{{dataset}}/val.csv",
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
        gpu=1,
        mem_mb=64000,
        runtime=2880,
    params:
        cli=train_launcher,
        recipe=recipe_json,
        classes=dataset_classes,
        checkpoint=checkpoint_path,
    shell:
        "{params.cli} train --beton {input.beton} --manifest {input.manifest} --indices {input.indices} "
        "--val-beton {input.val_beton} --val-manifest {input.val_manifest} --classes {params.classes:q} "
        "--arch {wildcards.arch} --seed {wildcards.seed} --recipe {params.recipe:q} --threads {threads} "
        "--checkpoint {params.checkpoint} --out-model {output.model} --out-metrics {output.metrics} --out-run {output.run} 2> {log}"
