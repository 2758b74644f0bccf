"""Language codes of multilingual tokenizers (NLLB-200, M2M100, mBART-50), from the codes a corpus uses.

One model translates between many languages, so its tokenizer marks each sentence with a language
token, and generation must start the translation with the target's token (``forced_bos_token_id``),
or the model picks a language itself. Each family spells the codes its own way:

| tokenizer | ``en`` | ``de`` | tokens |
|---|---|---|---|
| NLLB-200 (``NllbTokenizer``) | ``eng_Latn`` | ``deu_Latn`` | the code itself |
| M2M100 (``M2M100Tokenizer``) | ``en`` | ``de`` | ``__en__``, ``__de__`` |
| mBART-50 (``MBart50Tokenizer``) | ``en_XX`` | ``de_DE`` | the code itself |

``tokenizer_language_code`` takes either one of the tokenizer's own codes (``deu_Latn``) or the ISO
639-1 code a corpus uses (``de``, ``de-AT``: the region is ignored). A language with several scripts
in NLLB (``zh``: ``zho_Hans``, ``zho_Hant``) needs the script (``zh-Hans``). Anything else raises
``LanguageCodeError`` listing the close matches. Tokenizers of other families (Marian, T5) take no
language codes: ``set_tokenizer_languages`` leaves them as they are.
"""

import difflib
import re

from .languages import normalize_code, primary_subtag

# ISO 639-1 → the ISO 639-3 code that NLLB-200 writes before the script (Flores-200 language list).
# Macrolanguages map to the variety NLLB was trained on (ar → arb, Modern Standard Arabic; fa → pes;
# ms → zsm; no and nb → nob), as the NLLB paper (Costa-jussà et al. 2022, table 1) lists them.
NLLB_LANGUAGES = {
    "af": "afr", "ak": "aka", "am": "amh", "ar": "arb", "as": "asm", "ay": "ayr", "az": "azj", "ba": "bak",
    "be": "bel", "bg": "bul", "bm": "bam", "bn": "ben", "bo": "bod", "bs": "bos", "ca": "cat", "cs": "ces",
    "cy": "cym", "da": "dan", "de": "deu", "dz": "dzo", "ee": "ewe", "el": "ell", "en": "eng", "eo": "epo",
    "es": "spa", "et": "est", "eu": "eus", "fa": "pes", "fi": "fin", "fj": "fij", "fo": "fao", "fr": "fra",
    "ga": "gle", "gd": "gla", "gl": "glg", "gn": "grn", "gu": "guj", "ha": "hau", "he": "heb", "hi": "hin",
    "hr": "hrv", "ht": "hat", "hu": "hun", "hy": "hye", "id": "ind", "ig": "ibo", "is": "isl", "it": "ita",
    "ja": "jpn", "jv": "jav", "ka": "kat", "kg": "kon", "ki": "kik", "kk": "kaz", "km": "khm", "kn": "kan",
    "ko": "kor", "kr": "knc", "ks": "kas", "ku": "kmr", "ky": "kir", "lb": "ltz", "lg": "lug", "li": "lim",
    "ln": "lin", "lo": "lao", "lt": "lit", "lv": "lvs", "mg": "plt", "mi": "mri", "mk": "mkd", "ml": "mal",
    "mn": "khk", "mr": "mar", "ms": "zsm", "mt": "mlt", "my": "mya", "nb": "nob", "ne": "npi", "nl": "nld",
    "nn": "nno", "no": "nob", "ny": "nya", "oc": "oci", "om": "gaz", "or": "ory", "pa": "pan", "pl": "pol",
    "ps": "pbt", "pt": "por", "qu": "quy", "rn": "run", "ro": "ron", "ru": "rus", "rw": "kin", "sa": "san",
    "sc": "srd", "sd": "snd", "sg": "sag", "si": "sin", "sk": "slk", "sl": "slv", "sm": "smo", "sn": "sna",
    "so": "som", "sq": "als", "sr": "srp", "ss": "ssw", "st": "sot", "su": "sun", "sv": "swe", "sw": "swh",
    "ta": "tam", "te": "tel", "tg": "tgk", "th": "tha", "ti": "tir", "tk": "tuk", "tl": "tgl", "tn": "tsn",
    "tr": "tur", "ts": "tso", "tt": "tat", "tw": "twi", "ug": "uig", "uk": "ukr", "ur": "urd", "uz": "uzn",
    "vi": "vie", "wo": "wol", "xh": "xho", "yi": "ydd", "yo": "yor", "zh": "zho", "zu": "zul",
}

_NLLB_CODE = re.compile(r"[a-z]{3}_[A-Z][a-z]{3}")


class LanguageCodeError(ValueError):
    """A language code that names none of the multilingual tokenizer's languages, or several."""


def _nllb_codes(tokenizer) -> list[str]:
    # transformers 5 keeps NLLB's codes only as extra special tokens (no lang_code_to_id).
    return [str(token) for token in tokenizer.extra_special_tokens if _NLLB_CODE.fullmatch(str(token))]


def _nllb_language(code: str) -> str | None:
    return NLLB_LANGUAGES.get(code)


def _same_language(code: str) -> str:
    return code


# Tokenizer class (without "Fast") → (its codes, ISO 639-1 → the language part of its codes, code → token).
FAMILIES = {
    "NllbTokenizer": (_nllb_codes, _nllb_language, _same_language),
    "M2M100Tokenizer": (lambda tokenizer: list(tokenizer.lang_code_to_id), _same_language,
                        lambda code: f"__{code}__"),
    "MBart50Tokenizer": (lambda tokenizer: list(tokenizer.lang_code_to_id), _same_language, _same_language),
}


def family(tokenizer) -> str | None:
    """The ``FAMILIES`` key of ``tokenizer``'s class, or ``None`` for a tokenizer without language codes."""
    name = type(tokenizer).__name__.removesuffix("Fast")
    return name if name in FAMILIES else None


def tokenizer_language_code(tokenizer, code: str, flag: str = "tgt_lang") -> str:
    """The tokenizer's own code for ``code`` (``de`` → ``deu_Latn`` for NLLB); ``flag`` names it in errors."""
    codes = FAMILIES[family(tokenizer)][0](tokenizer)
    wanted = normalize_code(code)
    exact = [known for known in codes if normalize_code(known) == wanted]
    if exact:
        return exact[0]
    language = FAMILIES[family(tokenizer)][1](primary_subtag(code))
    candidates = [known for known in codes if language and primary_subtag(known) == language]
    if len(candidates) > 1:
        script = [known for known in candidates if normalize_code(known).split("-")[-1] in wanted.split("-")[1:]]
        if len(script) == 1:
            return script[0]
        raise LanguageCodeError(
            f"{flag}={code!r} names several languages of {family(tokenizer)}: {', '.join(candidates)}; "
            f"add the script ({primary_subtag(code)}-{candidates[0].split('_')[-1]}) or give one of these codes"
        )
    if candidates:
        return candidates[0]
    raise LanguageCodeError(
        f"{flag}={code!r} is not a language code of {family(tokenizer)}; close matches: "
        f"{', '.join(close_matches(code, codes)) or 'none'}; accepted: one of its {len(codes)} codes "
        f"({', '.join(codes[:4])}, …) or the ISO 639-1 code of one of their languages (en, de)"
    )


def close_matches(code: str, codes: list[str], limit: int = 6) -> list[str]:
    """Codes of the same language first (``deu`` → ``deu_Latn``, ``de_DE``), then those spelled alike."""
    wanted = primary_subtag(code)
    same_language = [
        known for known in codes
        if len(wanted) > 1 and (primary_subtag(known).startswith(wanted) or wanted.startswith(primary_subtag(known)))
    ]
    spelled_alike = difflib.get_close_matches(code, codes, n=limit, cutoff=0.6)
    return list(dict.fromkeys(same_language + spelled_alike))[:limit]


def language_token_id(tokenizer, code: str) -> int:
    """Id of the token that starts a sentence in the language with tokenizer code ``code``."""
    return tokenizer.convert_tokens_to_ids(FAMILIES[family(tokenizer)][2](code))


def set_tokenizer_languages(tokenizer, src_lang: str, tgt_lang: str) -> tuple[str, str] | None:
    """Set ``tokenizer.src_lang`` and ``tgt_lang`` to its codes for the pair; ``None`` if it takes no codes.

    The tokenizer then marks sources with the source's token and targets (``text_target=``) with the
    target's, and ``save_pretrained`` writes both codes into ``tokenizer_config.json``, so a reloaded
    tokenizer marks sources the same way.
    """
    if family(tokenizer) is None:
        return None
    codes = tokenizer_language_code(tokenizer, src_lang, "src_lang"), tokenizer_language_code(tokenizer, tgt_lang)
    tokenizer.src_lang, tokenizer.tgt_lang = codes
    return codes


def set_forced_bos_token(model, tokenizer, tgt_lang: str) -> int | None:
    """Make ``model.generate`` start every translation with ``tgt_lang``'s token; its id, or ``None``.

    Written into ``model.generation_config``, which ``save_pretrained`` saves as
    ``generation_config.json``: evaluation during training, ``translate`` and the saved or pushed model
    all produce the target language. Without it NLLB, M2M100 and mBART-50 pick the language
    themselves, often the source's (BLEU 2–5).
    """
    if family(tokenizer) is None:
        return None
    token_id = language_token_id(tokenizer, tokenizer_language_code(tokenizer, tgt_lang))
    model.generation_config.forced_bos_token_id = token_id
    return token_id


def prepare_translation_pair(model, tokenizer, src_lang: str, tgt_lang: str) -> None:
    """``set_tokenizer_languages`` and ``set_forced_bos_token``: what a multilingual model needs before it
    trains, translates or is saved; nothing for a model of one language pair."""
    if set_tokenizer_languages(tokenizer, src_lang, tgt_lang) is not None:
        set_forced_bos_token(model, tokenizer, tgt_lang)
