"""Helsinki-NLP/opus-mt-de-en fine-tuned on WMT16 German→English with L2-SP: the en_de recipe, reversed.

    accelerate launch recipes/de_en.py --output_dir runs/opus-mt-de-en-wmt16
    python recipes/de_en.py --max_steps 50 --max_train_samples 5000 --output_dir runs/trial
    hf-l2mt train de_en --l2sp_lambda 0.05

Data, batches, λ and its schedule are those of en_de (hf_l2mt/apps/recipes/en_de.py); every setting is a
flag, and flags win over it (docs/recipes.md).
"""

from hf_l2mt.apps.recipes.runner import run
from hf_l2mt.apps.recipes.en_de import CONFIG as EN_DE

CONFIG = {
    **EN_DE,
    "model_name_or_path": "Helsinki-NLP/opus-mt-de-en",
    "src_lang": "de",  # load_pairs reads WMT16's "de" side as the source
    "tgt_lang": "en",
    "output_dir": "runs/opus-mt-de-en-wmt16",
}


def main(argv=None):
    return run(CONFIG, argv, description=__doc__)


if __name__ == "__main__":
    main()
