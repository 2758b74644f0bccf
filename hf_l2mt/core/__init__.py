"""The library core: ``L2MTTrainer``, ``L2MTTrainingArguments`` and what they are made of.

Parameter groups, the anchor and checkpoints, the Fisher weights, token-budget batches, the token-level
loss, the non-finite guard, start-of-run checks and the strength schedules; the regularizers' pure maths
lives in ``hf_l2mt.core.regularizers``. Nothing here imports ``hf_l2mt.apps``.
"""
