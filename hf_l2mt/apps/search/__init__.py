"""``hf-l2mt search``: choosing λ with an Optuna study whose two objectives are the in-domain and the general-domain
score (``study``); its flags are apart (``settings``), so that ``--help`` loads no torch."""
