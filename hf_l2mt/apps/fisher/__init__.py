"""``hf-l2mt fisher``: a model's diagonal Fisher estimated on general-domain pairs from two text files, for EWC
(``estimate``; the maths is ``hf_l2mt.core.fisher``)."""
