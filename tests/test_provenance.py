"""provenance.csv: which commit (and whether the checkout had changes), which config, when, where."""

from __future__ import annotations

import subprocess

import pandas as pd

from genrobust.provenance import config_hash, git_state, write_provenance


def _git(folder, *args):
    subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True)


def test_the_commit_and_whether_the_checkout_had_changes(tmp_path):
    assert git_state(tmp_path) == ("-", "not a git checkout")
    _git(tmp_path, "init", "-q")
    (tmp_path / "Snakefile").write_text("rule all:\n")
    _git(tmp_path, "add", "Snakefile")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    commit, state = git_state(tmp_path)
    assert len(commit) == 40 and state == "clean"
    (tmp_path / "Snakefile").write_text("rule all:\n    input: []\n")
    assert git_state(tmp_path) == (commit, "changed")


def test_equal_configs_hash_equal_whatever_their_key_order(tmp_path):
    a = {"out": "results", "reports": {"table1": {"seeds": [0, 1]}}}
    b = {"reports": {"table1": {"seeds": [0, 1]}}, "out": "results"}
    assert config_hash(a) == config_hash(b) != config_hash({**a, "out": "elsewhere"})
    out = tmp_path / "provenance.csv"
    write_provenance(str(out), config_sha256=config_hash(a), out="results", configfiles=["config/config.yaml"],
                     checkout=tmp_path, reports=["table1"])
    record = pd.read_csv(out).set_index("key")["value"]
    assert record["config sha256"] == config_hash(a) and record["checkout"] == "not a git checkout"
    assert record["reports"] == "table1" and record["snakemake"] not in ("-", "")
