"""``ReportSettings``, the flags of ``hf-l2mt report``, apart from the page's module (sacreBLEU, numpy, jinja2) so
that ``hf-l2mt report --help`` loads none of those (docs/benchmarks.md, start-up time)."""

import os
from dataclasses import dataclass, field
from typing import ClassVar

from ...evaluation.report_names import REPORT_FILE, REPORT_SCORE_NAMES

PAGE_FILE = "forgetting_report.html"
DEFAULT_EXAMPLES = 5


@dataclass
class ReportSettings:
    """Which run's report becomes a page, and the settings that differ from the ones the run saved."""

    positional_fields: ClassVar[tuple[str, ...]] = ("run_dir",)

    run_dir: str | None = field(default=None, metadata={"help": f"a folder holding {REPORT_FILE}"})
    train_source: str | None = field(
        default=None, metadata={
            "metavar": "FILE",
            "help": "source side of the run's training data, one sentence per line: word frequencies are counted "
            "there (default: where the run counted them; for a report that saved none, in each test set itself)",
        },
    )
    metric: str | None = field(
        default=None, metadata={
            "choices": REPORT_SCORE_NAMES,
            "help": "the headline score: the one-sentence answer and the plot (default: the report's, chrf)",
        },
    )
    output: str | None = field(
        default=None, metadata={"metavar": "PATH", "help": f"where the page goes (default: RUN_DIR/{PAGE_FILE})"}
    )
    examples: int | None = field(
        default=None, metadata={
            "help": "sentences shown per set where the run got most worse, and most better (default: as the run "
            f"saved, else {DEFAULT_EXAMPLES})",
        },
    )

    def __post_init__(self):
        if self.run_dir is None:
            raise ValueError("RUN_DIR: none given; accepted: a folder holding " + REPORT_FILE)
        if self.examples is not None and self.examples < 0:
            raise ValueError(f"--examples: got {self.examples}; accepted: an integer >= 0")
        if self.train_source is not None and not os.path.isfile(self.train_source):
            raise ValueError(f"--train_source {self.train_source}: no such file")
