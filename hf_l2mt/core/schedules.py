"""Schedules for a regularization strength: pure functions of the optimizer step.

A term with base strength λ uses λ_t = λ · s(t) at update t, where t counts optimizer updates
from 0 (the first update uses s(0)). Every schedule maps [0, total_steps) to a factor in [0, 1].

- ``constant``: s(t) = 1.
- ``linear``:   s(t) = 1 − t/T, from 1 down to 0.
- ``cosine``:   s(t) = ½·(1 + cos(π·t/T)), from 1 down to 0.
- ``sigmoid``:  s(t) = 1 − σ(k·(t − t₀)), the annealing of RecAdam (Chen et al. 2020, "Recall and
  Learn", eq. 8), where the regularizer fades out around update t₀ with steepness k.

An optional warmup ramps the factor linearly, s(t) = t / warmup, over the first ``warmup_steps``
updates (as transformers warms up the learning rate); the schedule then runs over the remaining
T − warmup updates.
"""

import math

SCHEDULES = ("constant", "linear", "cosine", "sigmoid")
# The terms with a schedule of their own: <term>_schedule, _warmup_steps, _sigmoid_k, _sigmoid_t0.
SCHEDULED_TERMS = ("weight_decay", "l2sp", "kl")


def schedule_factor(
    name: str,
    step: int,
    total_steps: int,
    warmup_steps: int = 0,
    sigmoid_k: float | None = None,
    sigmoid_t0: float | None = None,
) -> float:
    """The factor s(step) in [0, 1] that multiplies a base strength λ.

    Args:
        name: one of ``SCHEDULES``.
        step: optimizer updates done so far (0 for the first update).
        total_steps: updates in the whole run (T).
        warmup_steps: updates over which the factor ramps from 0 up to the schedule.
        sigmoid_k: steepness of ``sigmoid`` per update; ``None`` means 10 / (T − warmup), so the
            transition spans roughly the middle 40 % of the run.
        sigmoid_t0: update (counted after warmup) at which ``sigmoid`` passes 0.5; ``None`` means
            half-way through the post-warmup updates.
    """
    if name not in SCHEDULES:
        raise ValueError(f"schedule: unknown schedule {name!r}; accepted: {', '.join(SCHEDULES)}")
    if step < warmup_steps:
        # 1. Linear warmup from 0, the same shape as transformers' learning-rate warmup.
        return step / warmup_steps
    # 2. Position inside the decaying part of the schedule.
    span = max(total_steps - warmup_steps, 1)
    t = min(step - warmup_steps, span)
    if name == "constant":
        return 1.0
    if name == "linear":
        return 1.0 - t / span
    if name == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t / span))
    # 3. sigmoid: 1 − σ(k (t − t0)), written with the numerically stable σ.
    k = 10.0 / span if sigmoid_k is None else sigmoid_k
    t0 = span / 2 if sigmoid_t0 is None else sigmoid_t0
    z = k * (t - t0)
    if z >= 0:
        return math.exp(-z) / (1.0 + math.exp(-z))
    return 1.0 / (1.0 + math.exp(z))
