"""What every command shares at the terminal: flags made from dataclasses (``dataclass_flags``), settings layered
from dicts, a YAML/JSON file and the command line (``settings``), and the lines a person reads while a Trainer
runs (``console``)."""
