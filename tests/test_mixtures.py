"""Mixtures: exact sizes, determinism, nesting across percentages, clear errors."""

import numpy as np
import pandas as pd
import pytest

from genrobust.config import ConfigError, parse_mixture
from genrobust.mixtures import sample_mixture


def pool(n_real=200, n_gen=400):
    return pd.DataFrame({"source": ["real"] * n_real + ["cl80"] * n_gen,
                         "label": np.arange(n_real + n_gen) % 10})


def sources(p, idx):
    return p.iloc[idx]["source"].value_counts().to_dict()


def test_parse_mixture():
    m = parse_mixture("real_100+cl80_50")
    assert m.terms == (("real", 100.0), ("cl80", 50.0)) and m.total is None
    m = parse_mixture("n_1300000+real_75+cl80_25")
    assert m.total == 1300000 and m.sources == ["real", "cl80"]
    for bad in ("real", "real_x", "n_10", "n_10+real_60+cl80_60", "real_50+n_10"):
        with pytest.raises(ConfigError):
            parse_mixture(bad)


@pytest.mark.parametrize("mix, expected", [
    ("real_100", {"real": 200}),
    ("real_25+cl80_50", {"real": 50, "cl80": 100}),
    ("real_50+cl80_200", {"real": 100, "cl80": 400}),
    ("cl80_100", {"cl80": 200}),
    ("n_200+real_75+cl80_25", {"real": 150, "cl80": 50}),
])
def test_mixture_sizes_are_exact(mix, expected):
    p = pool()
    idx = sample_mixture(p, mix, seed=0)
    assert sources(p, idx) == expected
    assert len(np.unique(idx)) == len(idx) and np.all(np.diff(idx) > 0)


def test_mixtures_are_deterministic_and_nested():
    p = pool()
    a = sample_mixture(p, "real_50+cl80_50", seed=0)
    assert np.array_equal(a, sample_mixture(p, "real_50+cl80_50", seed=0))
    assert not np.array_equal(a, sample_mixture(p, "real_50+cl80_50", seed=1))
    small = set(sample_mixture(p, "real_25+cl80_50", seed=0))
    large = set(sample_mixture(p, "real_100+cl80_100", seed=0))
    assert small < set(a) | large and small <= large


def test_mixture_larger_than_the_pool_says_what_to_generate():
    with pytest.raises(ConfigError, match="needs 600 cl80 images but the pool has 400"):
        sample_mixture(pool(), "real_100+cl80_300", seed=0)
