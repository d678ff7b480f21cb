# The paper's tables and figures, reduced from the analysis tables: one rule per report in
# config (table1, table3, figure3, ...), each a call of `genrobust report` writing a CSV and a PNG.

for name, spec in REPORTS.items():
    if spec["kind"] in METRIC_REPORT_KINDS:
        continue  # Tables 2, 5, 7 and the scatter: rules in metrics.smk

    rule:
        name:
            f"make_{name}"
        input:
            **report_inputs(name),
            metrics=report_metrics(name),
        output:
            table=report(f"{OUT}/{name}.csv", caption=f"../report/{spec['kind']}.rst", category=name),
            figure=report(report_figure(name), caption=f"../report/{spec['kind']}.rst", category=name),
        log:
            f"{OUT}/logs/make_{name}.log",
        localrule: True
        threads: 1
        conda:
            ENV
        params:
            cli=GENROBUST,
            kind=spec["kind"],
            spec=report_spec(name),
            metrics=report_metrics_arg,
            inputs=report_input_args,
        shell:
            "{params.cli} report --kind {params.kind:q} {params.inputs} {params.metrics} --spec {params.spec:q} "
            "--out-table {output.table:q} --out-figure {output.figure:q} 2> {log:q}"
