"""``hf-l2mt plot``: PNGs of a run's logged losses, penalties, strengths and scores, the λ search's Pareto front,
and the matplotlib loading and saving they and the forgetting report's plot share (``figures``)."""
