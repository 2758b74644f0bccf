"""Dataclass fields as ``argparse`` flags, by the rules of transformers' ``HfArgumentParser``, booleans as users write them.

The rules are those of ``HfArgumentParser._parse_dataclass_field`` (transformers 5.25, ``hf_argparser.py``):
the same field gives the same flag names, type, choices, ``nargs`` and default, so a recipe's
``L2MTTrainingArguments`` parse as transformers parses ``TrainingArguments``. They live here so that
listing or parsing a command's flags needs no ``import transformers``, which alone takes longer on
2 CPU cores than a ``--help`` may (docs/benchmarks.md, start-up time).

One difference: a boolean with a default is one entry in the help, ``--tiny, --no-tiny``, instead of
``--tiny [TINY]`` (and, for a default of true, a second ``--no_tiny`` entry). ``--tiny``, ``--tiny true``,
``--tiny false`` and ``--no-tiny`` (or ``--no_tiny``) all work, for every boolean.
"""

import argparse
import dataclasses
import types
from enum import Enum
from inspect import isclass
from typing import Any, Literal, Union, get_type_hints

TRUE_WORDS = ("yes", "true", "t", "y", "1")
FALSE_WORDS = ("no", "false", "f", "n", "0")


def boolean(value) -> bool:
    """``true``/``false`` and their other spellings (``HfArgumentParser``'s ``string_to_bool``) as a ``bool``."""
    if isinstance(value, bool):
        return value
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(
        f"got {value!r}; accepted: {'/'.join(TRUE_WORDS)} or {'/'.join(FALSE_WORDS)} (any case), or no value"
    )


class ChoiceType:
    """From a choice's text to the choice itself (an Enum member's value, a Literal's value); a text that is
    no choice stays as it is, for argparse to refuse naming the choices."""

    def __init__(self, choices):
        self.by_text = {str(choice): choice for choice in choices}

    def __call__(self, text):
        return self.by_text.get(text, text)


class BooleanFlag(argparse.Action):
    """``--flag`` alone sets true, ``--flag VALUE`` sets ``boolean(VALUE)``; ``negations`` are its
    ``--no-flag`` spellings, parsed by an action of their own (which takes no value) and listed with this one."""

    def __init__(self, option_strings, dest, negations=(), **kwargs):
        super().__init__(option_strings, dest, nargs="?", const=True, type=boolean, **kwargs)
        self.negations = list(negations)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)


def flag_names(name: str) -> list[str]:
    """``--name`` and, for a name with ``_``, its ``-`` spelling as well."""
    return [f"--{name}", f"--{name.replace('_', '-')}"] if "_" in name else [f"--{name}"]


def _is_union(kind) -> bool:
    origin = getattr(kind, "__origin__", kind)
    return origin is Union or isinstance(origin, types.UnionType)


def flag_type(name: str, kind):
    """``kind`` as ``HfArgumentParser`` reduces a union: ``X | str`` to ``X``, ``X | None`` to ``X`` (``bool | None``
    stays); any other union is an error naming the field."""
    if not _is_union(kind):
        return kind
    arguments = kind.__args__
    if str not in arguments and (len(arguments) != 2 or type(None) not in arguments):
        raise ValueError(
            f"field {name!r}: only X | None and X | str are accepted for a union, as one flag has one type"
        )
    if type(None) not in arguments:
        return arguments[0] if arguments[1] is str else arguments[1]
    if bool not in arguments:
        return arguments[0] if isinstance(None, arguments[1]) else arguments[1]
    return kind


def add_field_flag(parser, field: dataclasses.Field, kind) -> None:
    """Add the flag of one dataclass ``field`` of (resolved) type ``kind`` to ``parser`` (or an argument group)."""
    kwargs = dict(field.metadata)
    aliases = kwargs.pop("aliases", [])
    aliases = [aliases] if isinstance(aliases, str) else list(aliases)
    kind = flag_type(field.name, kind)
    origin = getattr(kind, "__origin__", kind)
    has_default = field.default is not dataclasses.MISSING
    if origin is Literal or (isinstance(kind, type) and issubclass(kind, Enum)):
        kwargs["choices"] = list(kind.__args__) if origin is Literal else [member.value for member in kind]
        kwargs["type"] = ChoiceType(kwargs["choices"])
        if has_default:
            kwargs["default"] = field.default
        else:
            kwargs["required"] = True
    elif kind is bool or kind == bool | None:
        if kind is bool or (has_default and field.default is not None):
            negations = [f"--no_{field.name}", f"--no-{field.name.replace('_', '-')}"]
            # The help shows --no_tiny only where the flag itself has an underscore spelling.
            shown = negations if "_" in field.name else negations[1:]
            kwargs["default"] = field.default if has_default else False
            parser.add_argument(*flag_names(field.name), *aliases, action=BooleanFlag, negations=shown, **kwargs)
            parser.add_argument(*negations, action="store_false", dest=field.name, help=argparse.SUPPRESS)
            return
        kwargs["type"] = boolean
    elif isclass(origin) and issubclass(origin, list):
        kwargs["type"] = kind.__args__[0]
        kwargs["nargs"] = "+"
        if field.default_factory is not dataclasses.MISSING:
            kwargs["default"] = field.default_factory()
        elif not has_default:
            kwargs["required"] = True
    else:
        kwargs["type"] = kind
        if has_default:
            kwargs["default"] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            kwargs["default"] = field.default_factory()
        else:
            kwargs["required"] = True
    parser.add_argument(*flag_names(field.name), *aliases, **kwargs)


def add_dataclass_flags(parser: argparse.ArgumentParser, dataclass_type) -> None:
    """One flag per ``init`` field of ``dataclass_type``, in a group named ``_argument_group_name`` if it has one."""
    target = parser
    if hasattr(dataclass_type, "_argument_group_name"):
        target = parser.add_argument_group(dataclass_type._argument_group_name)
    hints = get_type_hints(dataclass_type)
    for field in dataclasses.fields(dataclass_type):
        if field.init:
            add_field_flag(target, field, hints[field.name])


def build_dataclasses(dataclass_types, settings: dict[str, Any]) -> tuple:
    """One instance of each of ``dataclass_types`` from ``settings`` (field name → value); a name no type has
    is an error naming it."""
    unused = set(settings)
    instances = []
    for dataclass_type in dataclass_types:
        names = {field.name for field in dataclasses.fields(dataclass_type) if field.init}
        values = {name: value for name, value in settings.items() if name in names}
        unused -= set(values)
        instances.append(dataclass_type(**values))
    if unused:
        raise ValueError(f"settings {', '.join(sorted(unused))}: no command flag has these names")
    return tuple(instances)
