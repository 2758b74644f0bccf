"""The Trainer's flags for ``hf-l2mt train RECIPE --help``, listed without importing transformers.

``L2MTTrainingArguments`` subclasses transformers' ``Seq2SeqTrainingArguments``, whose module imports torch:
18 s for ``import transformers.training_args`` at a load of 7 on 2 cores (docs/benchmarks.md, start-up time).
Its fields are not read from the source: some are made when the module runs (the default ``optim`` depends on
torch's version, the choices of ``log_level`` on transformers' logging). So the first ``--help`` imports the
class and records its flags, as ``dataclass_flags`` makes them, in a listing under ``$HF_L2MT_CACHE`` (default
``~/.cache/hf_l2mt``); later ones rebuild the flags from it.

A listing is named by the versions of Python, hf_l2mt, transformers, torch and accelerate, and holds the hash
of each hf_l2mt file and of each file defining one of the class's bases; one that differs is not used. A
listing that cannot be written or read, or a flag it cannot rebuild exactly, means the import, as before.
"""

import argparse
import hashlib
import importlib.metadata
import json
import os
import sys

from ... import __version__
from ..terminal.dataclass_flags import BooleanFlag, ChoiceType, add_dataclass_flags, boolean

TYPES = {"int": int, "float": float, "str": str, "boolean": boolean}
PACKAGES = ("transformers", "torch", "accelerate")  # their versions change the fields (optim's default: torch)


class NotListed(Exception):
    """A value for a flag whose type the listing does not rebuild (``pathlib.Path``, an Enum list): parse
    it with the real dataclass. Not a ``ValueError``, so that neither argparse nor ``settings`` reports it."""


def unlisted_type(text):
    raise NotListed(text)


def type_name(action: argparse.Action) -> str | None:
    if action.type is None:
        return None
    if isinstance(action.type, ChoiceType):
        return "choices"
    return next((name for name, kind in TYPES.items() if action.type is kind), "unlisted")


def record_action(action: argparse.Action) -> dict:
    """One flag as JSON: what argparse shows and parses."""
    if isinstance(action, BooleanFlag):
        kind = "boolean"
    elif isinstance(action, argparse._StoreFalseAction):  # argparse names no public class for store_false
        kind = "store_false"
    elif type(action) is argparse._StoreAction:
        kind = "store"
    else:
        raise TypeError(f"flag {action.dest}: {type(action).__name__} is not listed")
    return {
        "kind": kind, "option_strings": action.option_strings, "dest": action.dest, "nargs": action.nargs,
        "const": action.const, "default": action.default, "type": type_name(action),
        "choices": None if action.choices is None else list(action.choices), "required": action.required,
        "help": action.help, "metavar": action.metavar, "negations": getattr(action, "negations", None),
    }


class FlagListing:
    """Stands for a dataclass in ``settings.settings_parser``: ``add_flags`` adds the flags it recorded."""

    def __init__(self, group: str | None, actions: list[dict]):
        self.group, self.actions = group, actions

    def add_flags(self, parser: argparse.ArgumentParser) -> None:
        target = parser.add_argument_group(self.group) if self.group else parser
        for flag in self.actions:
            # argparse tells a hidden flag by identity (``help is SUPPRESS``): JSON gives back an equal string only.
            common = {key: argparse.SUPPRESS if flag[key] == argparse.SUPPRESS else flag[key]
                      for key in ("dest", "default", "required", "help")}
            if flag["kind"] == "store_false":
                target.add_argument(*flag["option_strings"], action="store_false", **common)
                continue
            common.update(choices=flag["choices"], metavar=flag["metavar"])
            if flag["kind"] == "boolean":
                target.add_argument(*flag["option_strings"], action=BooleanFlag, negations=flag["negations"], **common)
                continue
            kind = flag["type"]
            rebuilt = ChoiceType(flag["choices"]) if kind == "choices" else TYPES.get(kind, unlisted_type)
            target.add_argument(*flag["option_strings"], nargs=flag["nargs"], const=flag["const"],
                                type=None if kind is None else rebuilt, **common)


def record(dataclass_type) -> FlagListing:
    """The flags ``add_dataclass_flags`` makes of ``dataclass_type``, as a listing."""
    parser = argparse.ArgumentParser(add_help=False)
    add_dataclass_flags(parser, dataclass_type)
    return FlagListing(getattr(dataclass_type, "_argument_group_name", None), [record_action(a) for a in parser._actions])


def describe(parser: argparse.ArgumentParser) -> list[dict]:
    """What the listing keeps of each flag of ``parser``, to compare a rebuilt parser with the original."""
    return [{**record_action(action), "group": next(
        group.title for group in parser._action_groups if action in group._group_actions)}
        for action in parser._actions if action.dest != "help"]


def cache_path() -> str:
    versions = [sys.version.split()[0], __version__]
    for package in PACKAGES:
        try:
            versions.append(f"{package}={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{package}=none")
    digest = hashlib.sha256(" ".join(versions).encode()).hexdigest()[:16]
    base = os.environ.get("HF_L2MT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "hf_l2mt")
    return os.path.join(base, f"training_flags-{digest}.json")


def file_hash(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def source_files(args_class) -> list[str]:
    """The files the listing is made from: every hf_l2mt module loaded, and the modules of the class's bases."""
    names = {name for name in sys.modules if name == "hf_l2mt" or name.startswith("hf_l2mt.")}
    names |= {base.__module__ for base in args_class.__mro__}
    files = (getattr(sys.modules.get(name), "__file__", None) for name in names)
    return sorted({path for path in files if path})


def load_listing() -> FlagListing | None:
    """The stored listing of ``L2MTTrainingArguments``' flags, or ``None`` if there is none that matches."""
    try:
        with open(cache_path(), encoding="utf-8") as handle:
            stored = json.load(handle)
        if any(file_hash(path) != digest for path, digest in stored["sources"].items()):
            return None
        return FlagListing(stored["group"], stored["actions"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_listing(args_class) -> None:
    """Record ``args_class``' flags, if the listing rebuilds them exactly; a folder that cannot be written is
    no error, the next ``--help`` imports the class again."""
    from ...atomic_write import atomic_path

    try:
        listing = record(args_class)
        stored = {"group": listing.group, "actions": listing.actions,
                  "sources": {path: file_hash(path) for path in source_files(args_class)}}
        text = json.dumps(stored)
    except (TypeError, ValueError, OSError):  # a flag it does not rebuild, a default no JSON holds, a source gone
        return
    original, rebuilt = argparse.ArgumentParser(), argparse.ArgumentParser()
    add_dataclass_flags(original, args_class)
    FlagListing(**{key: value for key, value in json.loads(text).items() if key != "sources"}).add_flags(rebuilt)
    if describe(rebuilt) != describe(original) or rebuilt.format_help() != original.format_help():
        return
    path = cache_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError:
        return


def training_flags():
    """What lists the Trainer's flags: the stored listing, else ``L2MTTrainingArguments`` itself, imported and
    recorded for the next time."""
    listing = load_listing()
    if listing is not None:
        return listing
    from ...core.training_args import L2MTTrainingArguments

    save_listing(L2MTTrainingArguments)
    return L2MTTrainingArguments
