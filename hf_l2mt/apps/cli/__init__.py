"""The ``hf-l2mt`` command: ``commands`` hands each command to the package that runs it, and ``flag_listing`` lists
the Trainer's flags for ``hf-l2mt train RECIPE --help`` without importing transformers. ``main`` is the console
script's entry point (``hf_l2mt.apps.cli:main``); ``python -m hf_l2mt.apps.cli`` runs it too."""

from .commands import main

__all__ = ["main"]
