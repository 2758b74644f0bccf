"""Settings from dicts, a YAML/JSON file and the command line, parsed into dataclasses by one parser.

Each layer becomes the parser's defaults, so a later one wins over an earlier one and the command
line wins over all (as trl's ``TrlParser`` reads ``--config``). Every value goes through the type
conversion and the choices of its flag, so ``learning_rate: 5e-5`` (a string to YAML 1.1) is a
float and a misspelt name or a bad value is an error that names the file and the flag.

Every ``hf-l2mt`` command parses its flags here. Dataclass fields become flags by the rules of
transformers' ``HfArgumentParser`` (``dataclass_flags``, which imports no transformers, so that
``--help`` answers at once), booleans as ``--flag`` / ``--no-flag``. A dataclass names its positional
arguments (a command's ``MODEL_DIR``) in a ``positional_fields`` class variable: dataclass fields
become ``--flags``, and there is no spelling for a positional argument in a field.
"""

import argparse
import contextlib
import difflib
import json
import os
import sys

import yaml

from .dataclass_flags import BooleanFlag, add_dataclass_flags, build_dataclasses

CONFIG_FLAG = "--config"
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
# Old spelling -> the one every command uses now; either on the command line or in a config file it is an
# error that names the new flag, so that one idea has one name (``num_threads``, as the demo spells it).
RENAMED_FLAGS = {"threads": "num_threads"}
# The usage line's program name for a parser built without one: ``hf-l2mt train en_de`` while the CLI runs a
# recipe, whose ``main(argv)`` does not know how it was called (``command_name``).
_command_names: list[str] = []


class SettingsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each flag's default and keeps the description's line breaks (its launch commands). A help text
    that says its own default, or a flag without one (``None``, an empty list), gets no ``(default: ...)``."""

    def _get_help_string(self, action):
        if "(default:" in (action.help or "") or action.default is None or action.default == []:
            return action.help
        return super()._get_help_string(action)

    def _format_action_invocation(self, action):
        if isinstance(action, BooleanFlag):  # one entry for --flag and its --no-flag spellings
            return ", ".join([*action.option_strings, *action.negations])
        return super()._format_action_invocation(action)


@contextlib.contextmanager
def command_name(prog: str):
    """Inside the block, a parser that ``parse_settings`` builds without a ``prog`` is named ``prog``."""
    _command_names.append(prog)
    try:
        yield
    finally:
        _command_names.pop()


def load_config_file(path: str) -> dict:
    """The mapping (flag name → value) in a ``.yaml``, ``.yml`` or ``.json`` file."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in CONFIG_SUFFIXES:
        raise ValueError(f"{CONFIG_FLAG} {path}: accepted are files ending in {', '.join(CONFIG_SUFFIXES)}")
    if not os.path.isfile(path):
        raise ValueError(f"{CONFIG_FLAG} {path}: no such file")
    with open(path, encoding="utf-8") as handle:
        try:
            settings = json.load(handle) if suffix == ".json" else yaml.safe_load(handle)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} line {err.lineno}: not valid JSON ({err.msg})") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ValueError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise ValueError(f"{path}: holds a {type(settings).__name__}; expected a mapping of flag names to values")
    return settings


class RepeatableFlag(argparse.Action):
    """``--flag A B --flag C`` gives ``[A, B, C]``; on the command line it replaces a list from a config file
    instead of adding to it, as every other flag does."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = getattr(namespace, self.dest, None)
        previous = [] if given is None or given is self.default else given
        setattr(namespace, self.dest, [*previous, *values])


def set_defaults(parser: argparse.ArgumentParser, settings: dict, origin: str) -> None:
    """Make ``settings`` the parser's defaults, each value converted and checked as its flag would be; a
    required flag given a value here is no longer required on the command line."""
    actions = {}
    for action in parser._actions:  # argparse keeps no public list of its actions
        if action.dest not in ("help", "config"):
            actions.setdefault(action.dest, action)
    for name, value in settings.items():
        renamed_error(str(name), actions, origin)
        if name not in actions:
            close = difflib.get_close_matches(str(name), actions, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; see --help for the accepted names"
            raise ValueError(f"{origin}: {name!r} is not a setting of this parser{hint}")
        action = actions[name]
        if action.nargs in ("+", "*"):
            value = [_convert(action, item, origin) for item in (value if isinstance(value, list) else [value])]
        else:
            value = _convert(action, value, origin)
        parser.set_defaults(**{name: value})
        action.required = False


def renamed_error(name: str, actions, origin: str) -> None:
    """A ``ValueError`` naming the new flag when ``name`` is an old spelling of one of ``actions``."""
    new = RENAMED_FLAGS.get(name)
    if new in actions and name not in actions:
        raise ValueError(f"{origin}: --{name} is now spelt --{new} in every hf-l2mt command; use --{new}")


def _convert(action: argparse.Action, value, origin: str):
    if value is None or isinstance(value, (dict, list)) or action.type is None:
        return value
    try:
        converted = action.type(str(value))
    except (TypeError, ValueError, argparse.ArgumentTypeError):
        kind = getattr(action.type, "__name__", "value")
        raise ValueError(f"{origin}: {action.dest}={value!r} is not a valid {kind}") from None
    if action.choices is not None and converted not in action.choices:
        accepted = ", ".join(map(repr, action.choices))
        raise ValueError(f"{origin}: {action.dest}={value!r}; accepted: {accepted}")
    return converted


def make_positional(parser: argparse.ArgumentParser, name: str) -> None:
    """Turn ``--name`` into the positional argument ``NAME``; a layer or a config file may still give it. A list
    field (``hf-l2mt merge RUN_DIR ...``) takes any number of values."""
    flag = next(action for action in parser._actions if action.dest == name)
    parser._remove_action(flag)
    for group in parser._action_groups:
        if flag in group._group_actions:
            group._group_actions.remove(flag)
    for option in flag.option_strings:
        parser._option_string_actions.pop(option)
    parser.add_argument(name, nargs="*" if flag.nargs == "+" else "?", type=flag.type, default=flag.default, metavar=name.upper(), help=flag.help)


def settings_parser(
    flag_sources,
    layers: dict[str, dict],
    argv: list[str] | None = None,
    description: str | None = None,
    prog: str | None = None,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    """The parser of ``parse_settings``, its defaults set from ``layers`` and ``--config FILE``. A flag source is
    a dataclass, or an object whose ``add_flags(parser)`` adds the flags (``flag_listing.FlagListing``)."""
    positional = [name for source in flag_sources for name in getattr(source, "positional_fields", ())]
    usage = " ".join(["%(prog)s", *(name.upper() for name in positional), f"[-h] [{CONFIG_FLAG} FILE] [--FLAG VALUE ...]"])
    if prog is None and _command_names:
        prog = _command_names[-1]
    parser = argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog, formatter_class=SettingsHelpFormatter,
        allow_abbrev=False, usage=usage,
    )
    for source in flag_sources:
        if hasattr(source, "add_flags"):
            source.add_flags(parser)
        else:
            add_dataclass_flags(parser, source)
    for name in positional:
        make_positional(parser, name)
    parser.add_argument(
        CONFIG_FLAG, metavar="FILE",
        help="YAML or JSON file of settings (flag name: value); flags given on the command line win over it.",
    )
    # argparse lists named groups (a dataclass with `_argument_group_name`) after the ungrouped flags; a
    # recipe's few flags are easier to find before the Trainer's hundreds.
    parser._action_groups.remove(parser._optionals)
    parser._action_groups.append(parser._optionals)
    config_reader = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    config_reader.add_argument(CONFIG_FLAG)
    config_path = config_reader.parse_known_args(argv)[0].config
    try:
        for argument in argv if argv is not None else sys.argv[1:]:
            if argument.startswith("--"):
                renamed_error(argument[2:].split("=", 1)[0], {a.dest for a in parser._actions}, "command line")
        for origin, layer in layers.items():
            set_defaults(parser, layer, origin)
        if config_path is not None:
            set_defaults(parser, load_config_file(config_path), config_path)
    except ValueError as err:
        parser.error(str(err))
    return parser


def parse_settings(
    dataclass_types,
    layers: dict[str, dict],
    argv: list[str] | None = None,
    description: str | None = None,
    prog: str | None = None,
    epilog: str | None = None,
):
    """Instances of ``dataclass_types`` from ``layers`` (origin → settings, earliest first), ``--config FILE``
    and ``argv``.

    ``argv`` defaults to ``sys.argv[1:]``. A bad flag or value prints the usage and the error, and
    exits with status 2, as argparse does.
    """
    parser = settings_parser(dataclass_types, layers, argv, description, prog, epilog)
    settings = vars(parser.parse_args(argv))
    settings.pop("config")
    positional = [name for dtype in dataclass_types for name in getattr(dtype, "positional_fields", ())]
    missing = [name.upper() for name in positional if settings[name] is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")
    try:
        return build_dataclasses(dataclass_types, settings)
    except ValueError as err:
        parser.error(str(err))
