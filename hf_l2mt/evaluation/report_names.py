"""The names of the scores and of the forgetting report's file, in a module that imports nothing, so that
a command's ``--help`` lists them without loading sacreBLEU or numpy (docs/benchmarks.md, start-up time)."""

SCORE_NAMES = ("bleu", "chrf", "ter", "exact_match")
# Every score but TER: what a λ search can maximise and hf-l2mt plot draws.
HIGHER_IS_BETTER = ("bleu", "chrf", "exact_match")
# The forgetting report also shows chrF++; the Trainer's per-evaluation metrics and the card's table keep SCORE_NAMES.
REPORT_SCORE_NAMES = ("bleu", "chrf", "chrf_pp", "ter", "exact_match")
SCORE_TITLES = {"bleu": "BLEU", "chrf": "chrF", "chrf_pp": "chrF++", "ter": "TER", "exact_match": "exact match"}
REPORT_FILE = "forgetting_report.json"
