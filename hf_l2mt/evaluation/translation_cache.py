"""Translations kept on disk, so that scoring the same model on the same file again costs no generation.

A cached file is keyed by the SHA-256 of: the model directory's real path, its ``config.json`` and the
size and modification time of each weight file (so a model saved again misses the cache), the source
sentences, and the generation settings. It lives under ``$HF_L2MT_CACHE/translations`` (default
``~/.cache/hf_l2mt/translations``) and holds the translations as JSON, one per source sentence.
"""

import hashlib
import json
import os

from ..atomic_write import atomic_path
from .translate import load_translation_model, translate

WEIGHT_SUFFIXES = (".safetensors", ".bin")


def cache_root() -> str:
    """``$HF_L2MT_CACHE/translations``, or ``~/.cache/hf_l2mt/translations``."""
    base = os.environ.get("HF_L2MT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "hf_l2mt")
    return os.path.join(base, "translations")


def model_fingerprint(model_dir: str) -> dict:
    """What identifies a saved model without reading its weights: path, config and each weight file's size and mtime."""
    real = os.path.realpath(model_dir)
    with open(os.path.join(real, "config.json"), "rb") as handle:
        config = hashlib.sha256(handle.read()).hexdigest()
    weights = {
        name: [os.stat(os.path.join(real, name)).st_size, os.stat(os.path.join(real, name)).st_mtime_ns]
        for name in sorted(os.listdir(real))
        if name.endswith(WEIGHT_SUFFIXES)
    }
    return {"path": real, "config_sha256": config, "weights": weights}


def cache_key(model_dir: str, sources: list[str], generation: dict) -> str:
    text = "\n".join(sources).encode("utf-8")
    key = {
        "model": model_fingerprint(model_dir),
        "sources_sha256": hashlib.sha256(text).hexdigest(),
        "num_sources": len(sources),
        "generation": {name: str(value) for name, value in sorted(generation.items())},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()


def cached_translations(model_dir: str, test_sets: dict[str, list[str]], **generation) -> tuple[dict, dict]:
    """``({set: translations}, {set: "cache" or "translated"})`` for each list of sources in ``test_sets``.

    The model is loaded only when a set is not cached. ``generation`` goes to ``translate`` (``device``
    is left out of the key: it does not change the output beyond numerical noise).
    """
    translations, origin, model = {}, {}, None
    for name, sources in test_sets.items():
        key_settings = {flag: value for flag, value in generation.items() if flag not in ("device", "progress")}
        if "source_prefix" in key_settings:  # no prefix is no prefix, whether None (the flags) or "" (a recipe run)
            key_settings["source_prefix"] = key_settings["source_prefix"] or ""
        path = os.path.join(cache_root(), f"{cache_key(model_dir, sources, key_settings)}.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                translations[name], origin[name] = json.load(handle), "cache"
            continue
        if model is None:
            model = load_translation_model(model_dir)
        translations[name], origin[name] = translate(sources, *model, **generation), "translated"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            json.dump(translations[name], handle, ensure_ascii=False)
    return translations, origin
