"""Atomic outputs: readable by collaborators as the umask allows."""

from __future__ import annotations


def test_outputs_follow_the_umask(tmp_path):
    """Collaborators on a shared results folder can read what the workflow writes (umask 022:
    0644 files, 0755 folders; umask 077: owner only)."""
    import os

    from genrobust import io

    old = os.umask(0o022)
    try:
        io.write_text(tmp_path / "a.txt", "x")
        with io.atomic_dir(tmp_path / "tree") as tmp:
            (tmp / "f").write_text("y")
        os.umask(0o077)
        io.write_text(tmp_path / "private.txt", "z")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "tree").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "private.txt").stat().st_mode & 0o777 == 0o600


def test_count_rows_counts_records_not_lines(tmp_path):
    import pandas as pd

    from genrobust import io

    frame = pd.DataFrame({"path": ["a.jpg", "b.jpg", "c.jpg"], "prompt": ["one", "two\nlines", ""]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    assert io.count_rows(tmp_path / "t.csv") == 3 == io.count_rows(tmp_path / "t.csv", chunk_rows=2)
    frame.iloc[:0].to_csv(tmp_path / "empty.csv", index=False)
    assert io.count_rows(tmp_path / "empty.csv") == 0
