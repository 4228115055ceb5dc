"""The ideal code's payload design (phy.link.ideal.design_payload) against a brute-force minimisation of the
expected distortion over every integer payload."""
import math

import numpy as np
import pytest

from phy.link.ideal import design_payload


def _brute_force(mi, distortion, erased, span):
    best = (math.inf, None)
    for b in range(0, int(mi.max() // span) + 2):
        p = float(np.mean(mi < span * b - 1e-9)) if b else 0.0
        best = min(best, ((1 - p) * distortion(b) + p * erased, -b))
    return -best[1], best[0]


@pytest.mark.parametrize("span, slope", [(1, 40.0), (3, 40.0), (1, 400.0), (2, 5.0)])
def test_design_matches_brute_force(span, slope):
    rng = np.random.default_rng(1)
    mi = span * rng.normal(300.0, 12.0, 5000)               # mutual information per codeword
    dist = lambda b: 2.0 ** (-b / slope)                     # noqa: E731 - a decreasing distortion
    d = design_payload(mi, dist, 1.0, span=span)
    b_ref, val_ref = _brute_force(mi, dist, 1.0, span)
    assert d.expected_distortion == pytest.approx(val_ref, rel=2e-3)
    assert abs(d.payload_bits - b_ref) <= 3
    assert d.outage == pytest.approx(np.mean(mi < span * d.payload_bits - 1e-9))
    # where the delivered distortion is far below the erased one, an erasure costs more: less outage
    flat = design_payload(mi, lambda b: 2.0 ** (-b / 400.0), 1.0, span=span)
    steep = design_payload(mi, lambda b: 2.0 ** (-b / 5.0), 1.0, span=span)
    assert steep.outage <= flat.outage and steep.payload_bits <= flat.payload_bits


def test_awgn_fixed_outage_and_nothing_fits():
    d = design_payload([100.7], lambda b: 1.0 / (1 + b), 1.0, span=2)      # deterministic: floor(100.7 / 2)
    assert (d.payload_bits, d.outage) == (50, 0.0)
    mi = np.arange(1000, dtype=float)
    fixed = design_payload(mi, lambda b: 1.0 / (1 + b), 1.0, outage=0.1)
    assert fixed.payload_bits == math.floor(np.quantile(mi, 0.1)) and fixed.outage == pytest.approx(0.1, abs=2e-3)
    none = design_payload([0.3, 0.5], lambda b: 1.0 / (1 + b), 1.0)
    assert none.payload_bits == 0 and none.expected_distortion == 1.0


@pytest.mark.parametrize("kwargs, exc", [
    (dict(mi_bits=[]), ValueError), (dict(mi_bits=[1.0, float("nan")]), ValueError),
    (dict(span=0), ValueError), (dict(span=1.5), ValueError), (dict(outage=1.0), ValueError),
    (dict(erased_distortion=float("inf")), ValueError), (dict(distortion_of=3), TypeError),
    (dict(levels=0), ValueError),
])
def test_bad_input(kwargs, exc):
    args = dict(mi_bits=[10.0, 20.0], distortion_of=lambda b: 1.0, erased_distortion=1.0)
    args.update(kwargs)
    with pytest.raises(exc):
        design_payload(**args)
