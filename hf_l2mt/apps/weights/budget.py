"""The forgetting budget: of the interpolated models, the one with the most in-domain gain that forgets no more than
allowed. A pure function of a table of numbers, so that it is tested on a table whose answer is known.

Each row is one α: ``in_domain_gain`` (the mean over in-domain sets of the change from the base, in points of the
budget's metric) and ``general_drop`` (the largest fall below the base over general-domain sets: the worst set
counts). The row of α = 1 is the fine-tune; the share of its gain that a row keeps is gain(α) / gain(1).
"""


def gain_kept(row: dict, fine_tune: dict) -> float | None:
    """The share of the fine-tune's in-domain gain that ``row`` keeps; None when the fine-tune gained nothing."""
    if fine_tune["in_domain_gain"] <= 0:
        return None
    return row["in_domain_gain"] / fine_tune["in_domain_gain"]


def pick_alpha(rows: list[dict], *, max_general_drop: float | None = None,
               min_gain_kept: float | None = None) -> dict:
    """The α whose row meets every budget given and has the most in-domain gain (the smaller α on a tie: it is
    nearer the base). Returns ``{"alpha", "why"}``, ``alpha`` None when no row meets the budget, ``why`` then
    saying by how much the nearest row misses it.

    ``rows`` must hold the fine-tune's row (``alpha`` 1.0) when ``min_gain_kept`` is given.
    """
    if max_general_drop is None and min_gain_kept is None:
        raise ValueError("pick_alpha: no budget given; accepted: max_general_drop, min_gain_kept or both")
    fine_tune = next((row for row in rows if row["alpha"] == 1.0), None)
    if min_gain_kept is not None and fine_tune is None:
        raise ValueError("pick_alpha: min_gain_kept needs the fine-tune's row (alpha 1.0)")
    if min_gain_kept is not None and gain_kept(fine_tune, fine_tune) is None:
        return {"alpha": None, "why": f"the fine-tune gained nothing in-domain ({fine_tune['in_domain_gain']:+.2f}), "
                                      "so no share of its gain can be kept"}

    def misses(row) -> list[str]:
        missed = []
        if max_general_drop is not None and row["general_drop"] > max_general_drop:
            missed.append(f"general drop {row['general_drop']:.2f} > {max_general_drop:g} by "
                          f"{row['general_drop'] - max_general_drop:.2f} points")
        if min_gain_kept is not None and gain_kept(row, fine_tune) < min_gain_kept:
            missed.append(f"gain kept {gain_kept(row, fine_tune):.2f} < {min_gain_kept:g} by "
                          f"{min_gain_kept - gain_kept(row, fine_tune):.2f}")
        return missed

    meeting = [row for row in rows if not misses(row)]
    if meeting:
        best = max(meeting, key=lambda row: (row["in_domain_gain"], -row["alpha"]))
        kept = f", {gain_kept(best, fine_tune):.0%} of the fine-tune's gain" if fine_tune and gain_kept(
            best, fine_tune) is not None else ""
        return {"alpha": best["alpha"], "why": (
            f"alpha {best['alpha']:g} has the most in-domain gain ({best['in_domain_gain']:+.2f}{kept}) of the "
            f"{len(meeting)} of {len(rows)} alphas within the budget (general drop {best['general_drop']:.2f})")}
    # The nearest miss: the smallest total shortfall, in the budget's own units.
    nearest = min(rows, key=lambda row: sum(_shortfall(row, fine_tune, max_general_drop, min_gain_kept)))
    return {"alpha": None, "why": f"no alpha meets the budget; the nearest, alpha {nearest['alpha']:g}, misses it: "
                                  + "; ".join(misses(nearest))}


def _shortfall(row, fine_tune, max_general_drop, min_gain_kept) -> list[float]:
    short = []
    if max_general_drop is not None:
        short.append(max(0.0, row["general_drop"] - max_general_drop))
    if min_gain_kept is not None:
        short.append(max(0.0, min_gain_kept - gain_kept(row, fine_tune)))
    return short
