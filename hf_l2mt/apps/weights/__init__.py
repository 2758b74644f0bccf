"""Models made from other models' weights: ``hf-l2mt average``, the mean of a run's last N complete checkpoints
(``average``); ``hf-l2mt interpolate``, models between a base and its fine-tune (``interpolate``), scored and picked
by a forgetting budget (``interpolation_scores``, ``budget``); ``hf-l2mt merge``, fine-tunes of one base merged
(``merge``); the tensors read one at a time and written (``tensors``)."""
