"""``hf-l2mt evaluate`` and ``hf-l2mt translate``: a fine-tuned model (or its CTranslate2 export) scored on test sets,
with the forgetting report against its base, or translating text (``commands``)."""
