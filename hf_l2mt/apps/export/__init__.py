"""``hf-l2mt export``: a fine-tuned model as a CTranslate2 folder, kept only if it translates the probe sentences
as PyTorch does (``convert``); the probe sentences (``probe``) and the loaders put in place of CTranslate2's own
where those translate differently (``loaders``)."""
