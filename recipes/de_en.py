"""Helsinki-NLP/opus-mt-de-en fine-tuned on WMT16 German→English with L2-SP: the en_de recipe, reversed.

    accelerate launch recipes/de_en.py --output_dir runs/opus-mt-de-en-wmt16
    python recipes/de_en.py --max_steps 50 --max_train_samples 5000 --output_dir runs/trial

The recipe, its settings and their arithmetic, is hf_l2mt/apps/recipes/de_en.py; every flag of
`python recipes/de_en.py --help` overrides it (docs/recipes.md).
"""

from hf_l2mt.apps.recipes.de_en import main

if __name__ == "__main__":
    main()
