"""`snakemake --report`: one HTML file with every report's table (rendered in its caption, the CSV
to download) and figure, each captioned with what the paper's version shows, and the workflow's
description.

check_html_report() builds the report of a finished run and checks it; the end-to-end demo test
calls it on its run, and test_report_of_a_finished_demo on a `make demo` left in the checkout.
The caption templates are rendered here on their own, the way Snakemake renders them."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from docutils.core import publish_parts
from jinja2 import Environment

from conftest import REPO, snakemake
from genrobust.report import write_display_copy

CAPTIONS = REPO / "workflow/report"
DEMO = yaml.safe_load((REPO / "config/demo.yaml").read_text())
FULL = yaml.safe_load((REPO / "config/config.yaml").read_text())
BEYOND = yaml.safe_load((REPO / "config/demo_beyond.yaml").read_text())
# What each report's caption says the paper's version shows: the exhibit, and one of its numbers.
PAPER = {
    "table1": ("Table 1", "35.6"),
    "table3": ("Table 3", "64.1"),
    "table4": ("Table 4", "64.8"),
    "figure3": ("Figure 3", "130K"),
    "figure11": ("Figure 11", "1.3M"),
    "table9": ("Table 9", "21.75"),
    "figure12": ("Figure 12", "2.6M"),
    "table2": ("Table 2", "248"),
    "table5": ("Table 5", "79.3"),
    "generated_scatter": ("Table 5", "55.9"),
    "table7": ("Table 7", "0.30"),
    "table6": ("Table 6", "38.1"),
}


def _outputs(table: str) -> SimpleNamespace:
    """A report rule's outputs as its caption sees them: the table and its copy for report.html."""
    return SimpleNamespace(table=table, display=str(write_display_copy(table)))


def render_caption(path: Path, files=(), **snakemake_object) -> str:
    """A caption as `snakemake --report` renders it: Jinja with its settings, then docutils."""
    text = Environment(trim_blocks=True, lstrip_blocks=True).from_string(path.read_text())
    rendered = text.render(snakemake=SimpleNamespace(**snakemake_object), files=list(files))
    return publish_parts(rendered, writer="html")["body"]


def _script_var(page: str, name: str):
    """The `var <name> = <json>;` that the report's page embeds."""
    script = name.replace("_", "-")
    block = re.search(rf'<script id="{script}">\s*var {name} = (.*?);\n\s*</script>', page, re.S)
    assert block, f"the report has no {name}"
    return json.loads(block[1])


def check_html_report(workdir: Path, config: dict, *args: str, report: Path | None = None) -> dict:
    """Build `snakemake --report` of the finished run in `workdir` (run with `config`; `args` as
    for that run, e.g. its profile) and check that every report of config is in it, its table
    rendered in the caption with the paper's version, its figure captioned alike, the sample
    sheets captioned, and the workflow described. Returns the report's results by file name."""
    report = report or workdir / "report.html"
    result = snakemake("--report", str(report), *args, cwd=workdir, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    page = report.read_text()
    results = {Path(path).name: entry for path, entry in _script_var(page, "results").items()}
    by_rule: dict[str, list[dict]] = {}
    for name, entry in results.items():
        by_rule.setdefault(entry["job_properties"]["rule"], []).append({"name": name, **entry})

    description = _script_var(page, "workflow_desc")
    assert "Leaving Reality to Imagination" in description and "analysis and report" in description

    for name in config["reports"]:
        entries = {Path(e["name"]).suffix: e for e in by_rule.get(f"make_{name}", [])}
        assert set(entries) == {".csv", ".png"}, f"report {name}: {sorted(entries)} in the HTML report"
        table = entries[".csv"]
        caption = html.unescape(table["caption"])
        assert "<table" in caption and "The paper's version" in caption, (name, caption[:1000])
        frame = pd.read_csv(workdir / config["out"] / table["name"], index_col=0)
        assert all(column in caption for column in frame.columns), (name, list(frame.columns))
        # every row label as written ("+ PixMix" shown as a label, not turned into a bullet)
        assert all(str(label) in caption for label in frame.index), (name, list(frame.index))
        assert "The paper's version" in entries[".png"]["caption"], name
    sheets = by_rule.get("make_contact_sheet", [])
    assert sheets and all("Figure 6" in e["caption"] for e in sheets)
    return results


@pytest.mark.parametrize("name", sorted(DEMO["reports"]))
def test_each_report_caption_renders_its_table_and_the_papers_version(name, tmp_path, monkeypatch):
    spec = DEMO["reports"][name]
    table = pd.DataFrame({"Training data": ["Real Data", "+ Stable Diffusion"], "ImageNet-R": [49.8, 71.2]})
    table.to_csv(tmp_path / f"{name}.csv", index=False)
    monkeypatch.chdir(tmp_path)  # Snakemake renders captions in the working directory
    body = render_caption(CAPTIONS / f"{spec['kind']}.rst", rule=f"make_{name}", config=DEMO,
                          output=_outputs(f"{name}.csv"))
    assert "System Message" not in body, body  # no reStructuredText error or warning
    assert re.search(r"<table.*ImageNet-R.*71\.2.*</table>", body, re.S), body
    # "+ Stable Diffusion" is a label, not a bullet list inside the cell
    assert re.search(r"<td>\s*(<p>)?\+ Stable Diffusion", body) and "<ul" not in body, body
    exhibit, number = PAPER[name]
    assert exhibit in body
    assert number in body and f"<strong>{name}</strong>" in body


def test_a_report_the_paper_does_not_have_gets_its_kinds_caption(tmp_path, monkeypatch):
    config = {**DEMO, "reports": {"guidance": {**DEMO["reports"]["table3"], "rows": {"Real": "real_100"}}}}
    (tmp_path / "guidance.csv").write_text("Training data,ImageNet\nReal,70.0\n")
    monkeypatch.chdir(tmp_path)
    body = render_caption(CAPTIONS / "accuracy_table.rst", rule="make_guidance", config=config,
                          output=_outputs("guidance.csv"))
    assert "System Message" not in body and "<table" in body and "Tables 3" in body


@pytest.mark.parametrize("name, phrase", [("guidance", "guidance alone"), ("diversity_er", "Pearson r"),
                                          ("scaling", "Real-Fake"), ("prompt_families", "diversity")])
def test_the_beyond_overlay_captions_render_with_their_settings(name, phrase, tmp_path, monkeypatch):
    config = {**DEMO, "reports": {**DEMO["reports"], **BEYOND["reports"]}}
    spec = config["reports"][name]
    (tmp_path / f"{name}.csv").write_text("Training data,Value\nA,1.0\n")
    monkeypatch.chdir(tmp_path)
    body = render_caption(CAPTIONS / f"{spec['kind']}.rst", rule=f"make_{name}", config=config,
                          output=_outputs(f"{name}.csv"))
    assert "System Message" not in body, body
    assert f"<strong>{name}</strong>" in body and phrase in body and "<table" in body
    if name == "guidance":
        assert "2 / 7.5" in body  # the scales, from the report's settings


@pytest.mark.parametrize("config", [DEMO, FULL], ids=["demo", "full"])
def test_workflow_description_names_the_run_and_the_demo(config):
    body = render_caption(CAPTIONS / "workflow.rst", config=config)
    assert "System Message" not in body
    assert all(f'literal">{name}</tt>' in body for name in config["reports"])
    assert ("offline demo" in body) == bool(config.get("demo"))


def test_front_page_says_what_each_report_shows_and_the_runs_provenance(tmp_path, monkeypatch):
    from genrobust.provenance import config_hash, write_provenance

    monkeypatch.chdir(tmp_path)
    record = write_provenance("provenance.csv", config_sha256=config_hash(FULL), out="results",
                              configfiles=["config/config.yaml"], checkout=REPO, reports=list(FULL["reports"]))
    body = render_caption(CAPTIONS / "workflow.rst", config=FULL,
                          files=[SimpleNamespace(target="provenance.csv", path="provenance.csv")])
    assert "System Message" not in body
    for name in FULL["reports"]:  # one line each, in words
        assert re.search(rf'literal">{name}</tt> \(\w+\): \w+', body), name
    assert record["commit"] in body and record["config sha256"] in body and len(record["config sha256"]) == 64
    assert "none yet" not in body
    assert "none yet" in render_caption(CAPTIONS / "workflow.rst", config=FULL, files=[])


def test_contact_sheet_caption():
    body = render_caption(CAPTIONS / "contact_sheet.rst", wildcards=SimpleNamespace(dataset="demo10"))
    assert "System Message" not in body and "Figure 6" in body and "demo10" in body


def test_every_report_output_is_marked_for_the_report():
    rules = (REPO / "workflow/rules/report.smk").read_text()
    assert re.search(r"table=report\(.*caption=f\"\.\./report/\{spec\.kind\.name\}\.rst\"", rules)
    assert re.search(r"figure=report\((?s:.*?)caption=f\"\.\./report/\{spec\.kind\.name\}\.rst\"", rules)
    reports = (*DEMO["reports"].values(), *FULL["reports"].values(), *BEYOND["reports"].values())
    kinds = {spec["kind"] for spec in reports}
    assert {"guidance_curve", "diversity_er", "scaling_curve"} <= kinds
    assert all((CAPTIONS / f"{kind}.rst").is_file() for kind in kinds)


@pytest.mark.slow
def test_report_of_a_finished_demo(tmp_path):
    """`make demo` leaves the run in the checkout; the end-to-end test checks its own run."""
    if not (REPO / "results/demo/table1.csv").is_file() or not (REPO / ".snakemake/metadata").is_dir():
        pytest.skip("no finished `make demo` in the checkout (test_demo_e2e's demo run checks its own report)")
    check_html_report(REPO, DEMO, "--profile", str(REPO / "workflow/profiles/demo"), report=tmp_path / "report.html")
