"""The bound a campaign puts on lost acknowledged writes (analysis/campaign_bound.py): the rule of three when none
was lost, the exact Clopper-Pearson upper bound when some were, computed without scipy."""

from __future__ import annotations

import pytest

from sessionproof.analysis.campaign_bound import (
    bound_sentence,
    clopper_pearson_upper,
    loss_bound,
    rule_of_three_upper,
)


def test_zero_lost_of_1000_is_the_rule_of_three():
    assert rule_of_three_upper(1000) == pytest.approx(0.0029912, abs=1e-7)  # 1 - 0.05 ** (1 / 1000), about 3/1000
    bound = loss_bound(0, 1000)
    assert not bound["violated"] and bound["one_in"] == 334
    sentence = bound_sentence(bound, 12)
    assert sentence.startswith("0 lost of 1000 acknowledged writes across 12 failovers: loss rate below 3/1000 at 95 %")
    assert "0.002991" in sentence and "1 in 334" in sentence


@pytest.mark.parametrize(
    ("k", "n", "upper"),
    [(1, 100, 0.05446), (5, 10, 0.81291), (0, 1000, 0.0036821), (10, 10, 1.0), (300, 1748, 0.19013)],
)
def test_clopper_pearson_upper_matches_known_values(k, n, upper):
    """Known exact intervals (Beta quantiles): 1/100 -> 0.0545, 5/10 -> 0.8129; 0/1000 two-sided is 1 - 0.025^(1/n)."""
    assert clopper_pearson_upper(k, n) == pytest.approx(upper, abs=5e-6)


def test_a_loss_is_a_violation_with_its_clopper_pearson_bound():
    bound = loss_bound(1, 100)
    assert bound["violated"] and bound["upper_95"] == pytest.approx(0.0545, abs=1e-4)
    sentence = bound_sentence(bound, 3, "1 lost_writes")
    assert "VIOLATED: 1 lost (1 lost_writes) of 100 acknowledged writes across 3 failovers" in sentence
    assert "observed rate 0.01); the exact Clopper-Pearson 95 % upper bound on the loss rate is 0.05446 (1 in 18)" in (
        sentence
    )
    assert loss_bound(0, 0)["upper_95"] is None and "nothing is bounded" in bound_sentence(loss_bound(0, 0), 0)
