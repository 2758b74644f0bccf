"""Models made from other models' weights: ``hf-l2mt average``, the mean of a run's last N complete checkpoints
(``average``)."""
