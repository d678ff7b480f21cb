# The paper's tables and figures, reduced from the analysis tables: one rule per report in
# config (table1, table3, ...), each a call of `genrobust report`.

for name, spec in REPORTS.items():
    if spec["kind"] not in ("robustness_table", "accuracy_table"):
        continue

    rule:
        name:
            f"make_{name}"
        input:
            **report_inputs(name),
        output:
            table=f"{OUT}/{name}.csv",
            figure=report(
                report_figure(name),
                caption="../report/accuracy_figure.rst",
                category=name,
            ),
        params:
            cli=GENROBUST,
            kind=spec["kind"],
            spec=report_spec(name),
        log:
            f"{OUT}/logs/make_{name}.log",
        conda:
            ENV
        localrule: True
        shell:
            "{params.cli} report --kind {params.kind} --accuracy {input.accuracy} --robustness {input.robustness} "
            "--spec {params.spec:q} --out-table {output.table} --out-figure {output.figure} 2> {log}"
