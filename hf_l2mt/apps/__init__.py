"""Applications built on the core, data and evaluation packages: the ``hf-l2mt`` CLI, the recipe runner and
recipes, the demo, λ search, plots, the model card and Hub publishing, the numbers task, tokenizer training."""
