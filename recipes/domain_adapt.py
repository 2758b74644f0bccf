"""Helsinki-NLP/opus-mt-de-en adapted from general text to medicine (Ding's [med.] entries) with L2-SP.

    accelerate launch recipes/domain_adapt.py --output_dir runs/opus-mt-de-en-med
    python recipes/domain_adapt.py --domain comp. --output_dir runs/opus-mt-de-en-comp

The recipe, its settings and their arithmetic, is hf_l2mt/apps/recipes/domain_adapt.py; every flag of
`python recipes/domain_adapt.py --help` overrides it (docs/recipes.md).
"""

from hf_l2mt.apps.recipes.domain_adapt import main

if __name__ == "__main__":
    main()
