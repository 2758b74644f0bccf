"""facebook/nllb-200-distilled-600M fine-tuned on WMT16 English→German with L2-SP.

    accelerate launch recipes/nllb_en_de.py --output_dir runs/nllb-600m-en-de-wmt16
    python recipes/nllb_en_de.py --max_steps 50 --max_train_samples 5000 --output_dir runs/trial

The recipe, its settings and their arithmetic, is hf_l2mt/apps/recipes/nllb_en_de.py; every flag of
`python recipes/nllb_en_de.py --help` overrides it (docs/recipes.md).
"""

from hf_l2mt.apps.recipes.nllb_en_de import main

if __name__ == "__main__":
    main()
