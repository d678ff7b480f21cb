# The paper's tables and figures, reduced from the analysis tables: one rule per report in
# config (table1, table3, figure3, ...), each a call of `genrobust report` writing a CSV and a PNG.

for name, spec in STUDY.reports.items():
    if spec.kind.family == METRIC:
        continue  # Tables 2, 5, 7 and the scatter: rules in metrics.smk

    rule:
        name:
            f"make_{name}"
        input:
            **report_inputs(name),
            metrics=report_metrics(name),
        output:
            table=report(f"{OUT}/{name}.csv", caption=f"../report/{spec.kind.name}.rst", category=report_category(name)),
            figure=report(
                report_figure(name), caption=f"../report/{spec.kind.name}.rst", category=report_category(name)
            ),
            display=report_display(name),
        log:
            f"{OUT}/logs/make_{name}.log",
        localrule: True
        conda:
            ENV
        threads: 1
        params:
            cli=GENROBUST,
            kind=spec.kind.name,
            spec=report_spec(name),
            metrics=report_metrics_arg,
            inputs=report_input_args,
        shell:
            "{params.cli} report --kind {params.kind:q} {params.inputs} {params.metrics} --spec {params.spec:q} "
            "--out-table {output.table:q} --out-figure {output.figure:q} --out-display {output.display:q} 2> {log:q}"


# The run's provenance (commit, config hash, when, on what), after every report: report.html's front
# page shows it.
rule provenance:
    input:
        [path for name in STUDY.reports for path in report_outputs(name)],
    output:
        report(PROVENANCE, caption="../report/provenance.rst", category="About this run"),
    log:
        f"{OUT}/logs/provenance.log",
    localrule: True
    conda:
        ENV
    threads: 1
    params:
        cli=GENROBUST,
        results=lambda wildcards: OUT,  # the config's out folder, recorded as a name
        config_sha256=config_hash(thawed(STUDY.config)),
        configfiles=" ".join(quote(str(path)) for path in workflow.configfiles),
        checkout=workflow.basedir,
        reports=" ".join(map(quote, STUDY.reports)),
    shell:
        "{params.cli} provenance --config-sha256 {params.config_sha256:q} --results {params.results:q} "
        "--configfiles {params.configfiles} --checkout {params.checkout:q} --reports {params.reports} "
        "--out {output:q} 2> {log:q}"
