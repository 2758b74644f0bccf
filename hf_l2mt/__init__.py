"""hf_l2mt: fine-tune pretrained machine-translation models with L2 regularization done right.

The package has four parts (the README's "Where things live" table lists every module):

- ``hf_l2mt.core``: the trainer, its arguments, parameter groups, the anchor and checkpoints, and the
  regularizers' pure maths (``hf_l2mt.core.regularizers``);
- ``hf_l2mt.data``: loaders for parallel corpora and translation memories, cleaning, splits, tokenization;
- ``hf_l2mt.evaluation``: sacreBLEU scores and batched translation;
- ``hf_l2mt.apps``: what is built on them: the CLI, the recipe runner and recipes, the demo, λ search,
  plots, the model card and Hub publishing, the numbers task.

``from hf_l2mt import L2MTTrainer, L2MTTrainingArguments`` imports the trainer on first use only, so
``import hf_l2mt`` (and ``hf-l2mt --help``) stays fast.
"""

import importlib
import logging as _logging

__version__ = "0.1.0"

# Public name -> the module that defines it; imported on first access (PEP 562).
_PUBLIC = {
    "L2MTTrainer": "hf_l2mt.core.trainer",
    "L2MTTrainingArguments": "hf_l2mt.core.training_args",
}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hf_l2mt' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_PUBLIC])


# The parameter-group table and other start-of-run facts are INFO messages a user should see by
# default, as nanoGPT prints its decay/no-decay split; configure the "hf_l2mt" logger to change this.
_logger = _logging.getLogger("hf_l2mt")
if not _logger.handlers and not _logging.getLogger().handlers:
    _handler = _logging.StreamHandler()
    _handler.setFormatter(_logging.Formatter("[hf_l2mt] %(message)s"))
    _logger.addHandler(_handler)
    _logger.setLevel(_logging.INFO)
