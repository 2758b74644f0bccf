"""hf_l2mt: fine-tune pretrained machine-translation models with L2 regularization done right."""

import logging as _logging

from .trainer import L2MTTrainer
from .training_args import L2MTTrainingArguments

__version__ = "0.1.0"
__all__ = ["L2MTTrainer", "L2MTTrainingArguments", "__version__"]

# The parameter-group table and other start-of-run facts are INFO messages a user should see by
# default, as nanoGPT prints its decay/no-decay split; configure the "hf_l2mt" logger to change this.
_logger = _logging.getLogger("hf_l2mt")
if not _logger.handlers and not _logging.getLogger().handlers:
    _handler = _logging.StreamHandler()
    _handler.setFormatter(_logging.Formatter("[hf_l2mt] %(message)s"))
    _logger.addHandler(_handler)
    _logger.setLevel(_logging.INFO)
