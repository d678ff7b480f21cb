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
        model=protected(f"{OUT}/train/{{dataset}}/mix~{{mix}}/arch~{{arch}}/seed~{{seed}}/model.pt"),
        metrics=ensure(
            f"{OUT}/train/{{dataset}}/mix~{{mix}}/arch~{{arch}}/seed~{{seed}}/metrics.jsonl",
            non_empty=True,
        ),
    params:
        cli=train_launcher,
        recipe=recipe_json,
        classes=dataset_classes,
        checkpoint=checkpoint_path,
    log:
        f"{OUT}/logs/train_classifier/{{dataset}}/{{mix}}-{{arch}}-{{seed}}.log",
    benchmark:
        f"{OUT}/benchmarks/train_classifier/{{dataset}}/{{mix}}-{{arch}}-{{seed}}.tsv"
    threads: 16
    resources:
        gpu=1,
        mem_mb=64000,
        runtime=2880,
    conda:
        ENV
    shell:
        "{params.cli} train --beton {input.beton} --manifest {input.manifest} --indices {input.indices} "
        "--val-beton {input.val_beton} --val-manifest {input.val_manifest} --classes {params.classes:q} "
        "--arch {wildcards.arch} --seed {wildcards.seed} --recipe {params.recipe:q} --threads {threads} "
        "--checkpoint {params.checkpoint} --out-model {output.model} --out-metrics {output.metrics} 2> {log}"
