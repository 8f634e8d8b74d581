"""The bound a campaign puts on the loss of acknowledged writes, with 95 % confidence.

k lost of N acknowledged writes. k = 0: the one-sided exact bound 1 - 0.05^(1/N), which the rule of three rounds
to 3/N. k > 0: the invariant was violated, and the loss rate is bounded by the upper end of the exact
Clopper-Pearson 95 % interval (two-sided: the p at which P(X <= k; N, p) = 2.5 %), found by bisection on the
binomial CDF summed in log space (no scipy).
"""

from __future__ import annotations

import math

CONFIDENCE = 0.95


def binomial_log_cdf(k: int, n: int, p: float) -> float:
    """log P(X <= k) for X ~ Binomial(n, p)."""
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 0.0 if k >= n else -math.inf
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
        for i in range(min(k, n) + 1)
    ]
    top = max(terms)
    return top + math.log(sum(math.exp(term - top) for term in terms))


def clopper_pearson_upper(k: int, n: int, confidence: float = CONFIDENCE) -> float:
    """The upper end of the exact two-sided Clopper-Pearson interval for k successes in n trials."""
    if n <= 0:
        raise ValueError("a bound needs at least one trial")
    if k >= n:
        return 1.0
    log_alpha = math.log((1 - confidence) / 2)
    low, high = k / n, 1.0  # the CDF falls as p grows: at low it is above alpha, at 1 below
    for _ in range(200):
        middle = (low + high) / 2
        if binomial_log_cdf(k, n, middle) > log_alpha:
            low = middle
        else:
            high = middle
        if high - low < 1e-15:
            break
    return high


def rule_of_three_upper(n: int, confidence: float = CONFIDENCE) -> float:
    """The exact one-sided bound for 0 of n: the p at which (1 - p)^n = 1 - confidence (about 3/n)."""
    if n <= 0:
        raise ValueError("a bound needs at least one trial")
    return 1 - (1 - confidence) ** (1 / n)


def one_in(rate: float) -> int | None:
    """The rate as '1 in M', M rounded down so that 1/M is never below the rate."""
    return math.floor(1 / rate) if rate > 0 else None


def loss_bound(lost: int, acknowledged: int) -> dict:
    """The bound's figures: observed rate, the 95 % upper bound, its method, '1 in M', violated or not."""
    if acknowledged <= 0:
        return {"lost": lost, "acknowledged": acknowledged, "violated": lost > 0, "upper_95": None, "method": None}
    zero = lost == 0
    upper = rule_of_three_upper(acknowledged) if zero else clopper_pearson_upper(lost, acknowledged)
    return {
        "lost": lost,
        "acknowledged": acknowledged,
        "violated": not zero,
        "observed_rate": lost / acknowledged,
        "upper_95": upper,
        "one_in": one_in(upper),
        "method": "exact one-sided bound 1 - 0.05^(1/N) (the rule of three rounds it to 3/N)"
        if zero
        else "the upper end of the exact two-sided Clopper-Pearson 95 % interval",
    }


def bound_sentence(bound: dict, failovers: int, lost_detail: str = "") -> str:
    """The bound in one sentence, as the report states it; lost_detail says what the lost writes were."""
    k, n = bound["lost"], bound["acknowledged"]
    across = f"across {failovers} failover{'s' * (failovers != 1)}"
    if n <= 0:
        return f"{k} lost of 0 acknowledged writes {across}: nothing was acknowledged, so nothing is bounded."
    upper = f"{bound['upper_95']:.4g} (1 in {bound['one_in']:,})"
    if not bound["violated"]:
        return (
            f"0 lost of {n} acknowledged writes {across}: loss rate below 3/{n} at 95 % confidence "
            f"(exactly 1 - 0.05^(1/{n}) = {upper})."
        )
    return (
        f"The invariant was VIOLATED: {k} lost{f' ({lost_detail})' if lost_detail else ''} of {n} acknowledged "
        f"writes {across} (observed rate "
        f"{bound['observed_rate']:.4g}); the exact Clopper-Pearson 95 % upper bound on the loss rate is {upper}."
    )
