"""Mixtures: exact sizes, determinism, nesting across percentages, clear errors."""

import numpy as np
import pandas as pd
import pytest

from genrobust.config import ConfigError, parse_mixture
from genrobust.mixtures import read_mixture, sample_mixture, write_mixture


def pool(n_real=200, n_gen=400):
    """Rows per source (each source has its own beton)."""
    return {"real": n_real, "cl80": n_gen}


def sources(chosen):
    return {s: len(rows) for s, rows in chosen.items()}


def pairs(chosen):
    return {(s, int(r)) for s, rows in chosen.items() for r in rows}


def test_parse_mixture():
    m = parse_mixture("real_100+cl80_50")
    assert m.terms == (("real", 100.0), ("cl80", 50.0)) and m.total is None
    m = parse_mixture("n_1300000+real_75+cl80_25")
    assert m.total == 1300000 and m.sources == ["real", "cl80"]
    for bad in ("real", "real_x", "n_10", "n_10+real_60+cl80_60", "real_50+n_10"):
        with pytest.raises(ConfigError):
            parse_mixture(bad)


def test_a_sepbn_mixture_is_the_same_rows_trained_with_separate_batchnorm():
    plain, split = parse_mixture("real_100+cl80_100"), parse_mixture("real_100+cl80_100+sepbn")
    assert split.terms == plain.terms and split.separate_bn and not plain.separate_bn
    available = {"real": 40, "cl80": 40}
    assert pairs(sample_mixture(available, split.name, 0)) == pairs(sample_mixture(available, plain.name, 0))
    for bad, message in (("cl80_100+sepbn", "needs both"), ("real_100+sepbn", "needs both"),
                         ("real_100+sepbn+cl80_100", "'sepbn' is not source_percent")):
        with pytest.raises(ConfigError, match=message):
            parse_mixture(bad)


@pytest.mark.parametrize("mix, expected", [
    ("real_100", {"real": 200}),
    ("real_25+cl80_50", {"real": 50, "cl80": 100}),
    ("real_50+cl80_200", {"real": 100, "cl80": 400}),
    ("cl80_100", {"cl80": 200}),
    ("n_200+real_75+cl80_25", {"real": 150, "cl80": 50}),
])
def test_mixture_sizes_are_exact(mix, expected):
    chosen = sample_mixture(pool(), mix, seed=0)
    assert sources(chosen) == expected
    for source, rows in chosen.items():
        assert np.all(np.diff(rows) > 0) and rows.min() >= 0 and rows.max() < pool()[source]


def test_mixtures_are_deterministic_and_nested():
    p = pool()
    a = pairs(sample_mixture(p, "real_50+cl80_50", seed=0))
    assert a == pairs(sample_mixture(p, "real_50+cl80_50", seed=0))
    assert a != pairs(sample_mixture(p, "real_50+cl80_50", seed=1))
    small = pairs(sample_mixture(p, "real_25+cl80_50", seed=0))
    large = pairs(sample_mixture(p, "real_100+cl80_100", seed=0))
    assert small < a | large and small <= large
    # a source's rows do not depend on the other sources of the mixture (or on there being any)
    assert pairs(sample_mixture({**p, "photo": 300}, "real_50+photo_50", seed=0)) >= {
        x for x in a if x[0] == "real"}


def test_mixture_larger_than_the_pool_says_what_to_generate():
    with pytest.raises(ConfigError, match="needs 600 cl80 images but the source has 400"):
        sample_mixture(pool(), "real_100+cl80_300", seed=0)


def test_mixture_file_round_trip(tmp_path):
    real = tmp_path / "real.csv"
    pd.DataFrame({"path": [f"r{i}.jpg" for i in range(20)], "wnid": "n01"}).to_csv(real, index=False)
    cl80 = tmp_path / "cl80.csv"
    pd.DataFrame({"path": [f"g{i}.jpg" for i in range(30)], "wnid": "n01"}).to_csv(cl80, index=False)
    written = write_mixture({"real": str(real), "cl80": str(cl80)}, "cl80_150", 3, tmp_path / "mix.csv")
    assert sources(written) == {"cl80": 30}  # 150% of the 20 real images; no real row
    back = read_mixture(tmp_path / "mix.csv")
    assert list(back) == ["cl80"] and np.array_equal(back["cl80"], written["cl80"])
