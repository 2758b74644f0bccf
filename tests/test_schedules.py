import math

import pytest

from hf_l2mt.core.schedules import SCHEDULES, schedule_factor


@pytest.mark.parametrize(
    "name, step, expected",
    [
        ("constant", 0, 1.0), ("constant", 99, 1.0),
        ("linear", 0, 1.0), ("linear", 25, 0.75), ("linear", 100, 0.0),
        ("cosine", 0, 1.0), ("cosine", 50, 0.5), ("cosine", 100, 0.0), ("cosine", 25, 0.5 * (1 + math.cos(math.pi / 4))),
        ("sigmoid", 50, 0.5),
    ],
)
def test_values_at_chosen_steps(name, step, expected):
    assert schedule_factor(name, step, total_steps=100) == pytest.approx(expected)


def test_sigmoid_is_recadam_annealing():
    # RecAdam: task weight sigma(k (t - t0)); the regularizer keeps 1 - sigma.
    k, t0 = 0.2, 30
    for t in (0, 10, 30, 45, 90):
        assert schedule_factor("sigmoid", t, 100, sigmoid_k=k, sigmoid_t0=t0) == pytest.approx(
            1 - 1 / (1 + math.exp(-k * (t - t0)))
        )
    # Far from t0 the stable form neither overflows nor leaves [0, 1].
    assert schedule_factor("sigmoid", 0, 100, sigmoid_k=50.0, sigmoid_t0=90) == pytest.approx(1.0)
    # The exact value, exp(-4950), is below every float64; 1e-12 admits round-off near 0, not a wrong branch (1, NaN).
    assert schedule_factor("sigmoid", 99, 100, sigmoid_k=50.0, sigmoid_t0=0) == pytest.approx(0.0, abs=1e-12)


def test_warmup_ramps_then_schedule_runs_on_the_rest():
    assert [schedule_factor("constant", t, 100, warmup_steps=4) for t in range(6)] == [0, 0.25, 0.5, 0.75, 1, 1]
    # linear over the 80 post-warmup updates: at update 20 + 40 it is half-way.
    assert schedule_factor("linear", 60, 100, warmup_steps=20) == pytest.approx(0.5)


@pytest.mark.parametrize("name", SCHEDULES)
def test_every_schedule_stays_in_unit_interval_and_never_rises_after_warmup(name):
    values = [schedule_factor(name, t, 50) for t in range(60)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert all(b <= a + 1e-12 for a, b in zip(values, values[1:]))


def test_unknown_schedule_names_the_accepted_ones():
    with pytest.raises(ValueError, match=r"'exponential'.*constant, linear, cosine, sigmoid"):
        schedule_factor("exponential", 0, 10)
