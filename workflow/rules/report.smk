# The paper's tables and figures, reduced from the analysis tables.


if "table1" in config["reports"]:

    rule make_table1:
        input:
            **report_inputs("table1"),
        output:
            table=f"{OUT}/table1.csv",
            figure=report(f"{OUT}/figure2.png", caption="../report/figure2.rst", category="Table 1 / Figure 2"),
        params:
            cli=GENROBUST,
            spec=report_spec("table1"),
        log:
            f"{OUT}/logs/make_table1.log",
        conda:
            ENV
        localrule: True
        shell:
            "{params.cli} table1 --accuracy {input.accuracy} --robustness {input.robustness} "
            "--spec {params.spec:q} --out-table {output.table} --out-figure {output.figure} 2> {log}"
