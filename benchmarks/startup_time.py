"""Time to answer of the ``hf-l2mt`` command where a person waits: every ``--help`` and translating one line.

Each row runs ``--runs`` times as a fresh process; cold is the first run (files maybe not yet in the page
cache), warm the median of the others, compared with the row's target:

- ``hf-l2mt --help``, ``hf-l2mt COMMAND --help`` and ``hf-l2mt train RECIPE --help``: 1 s, and the help's
  first line must be the command's own usage line (``usage: hf-l2mt train en_de ...``);
- ``hf-l2mt translate EXPORT_DIR < LINE`` (one line on standard input; a CTranslate2 export, ``--export_dir``): 1.5 s;
- ``hf-l2mt translate MODEL_DIR < LINE`` (PyTorch, ``--model_dir``): 4 s.

The bare imports the rows are made of (Python alone, transformers, ``transformers.training_args``, torch,
ctranslate2) are timed alongside, without a target. The demo's base model and its export make a fair pair
(``hf-l2mt demo`` caches the base in ``~/.cache/hf_l2mt/numbers_base-*``):

    hf-l2mt export ~/.cache/hf_l2mt/numbers_base-HASH --probe numbers.en --output_dir /tmp/numbers-ct2
    python -m benchmarks.startup_time --runs 5 --model_dir ~/.cache/hf_l2mt/numbers_base-HASH \\
        --export_dir /tmp/numbers-ct2 --line "five hundred and twenty-one"
    python -m benchmarks.startup_time --runs 5 --check   # exit 1 if a warm time misses its target
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELP_SECONDS, EXPORT_SECONDS, PYTORCH_SECONDS = 1.0, 1.5, 4.0
# The arguments before --help of each help row; the usage line must start with "usage: hf-l2mt" and them.
HELP_COMMANDS = [
    [], ["train"], ["evaluate"], ["translate"], ["fisher"], ["search"], ["plot"], ["report"], ["export"],
    ["average"], ["demo"], ["train", "en_de"],
]
IMPORTS = ["sys", "transformers", "transformers.training_args", "torch", "ctranslate2"]


def console_script() -> list[str]:
    """The installed ``hf-l2mt`` next to this Python, else the module it runs."""
    script = os.path.join(os.path.dirname(sys.executable), "hf-l2mt")
    return [script] if os.path.isfile(script) else [sys.executable, "-m", "hf_l2mt.apps.cli"]


def run_once(command: list[str], stdin: str | None) -> tuple[float, str]:
    """Seconds ``command`` took as a fresh process (this checkout's hf_l2mt) and the first line it printed."""
    env = {**os.environ, "PYTHONPATH": ROOT}
    start = time.perf_counter()
    result = subprocess.run(command, env=env, check=True, input=stdin, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    return seconds, (result.stdout.splitlines() or [""])[0]


def planned_rows(model_dir: str | None, export_dir: str | None, line: str) -> list[dict]:
    """What to time: label, command, standard input, target seconds and the expected start of the output."""
    rows = [
        {"command": " ".join(["hf-l2mt", *arguments, "--help"]), "argv": [*console_script(), *arguments, "--help"],
         "stdin": None, "target": HELP_SECONDS, "starts": " ".join(["usage: hf-l2mt", *arguments])}
        for arguments in HELP_COMMANDS
    ]
    for folder, target, what in ((export_dir, EXPORT_SECONDS, "EXPORT_DIR"), (model_dir, PYTORCH_SECONDS, "MODEL_DIR")):
        if folder is not None:
            rows.append({"command": f"hf-l2mt translate {what} < LINE", "argv": [*console_script(), "translate", folder],
                         "stdin": line + "\n", "target": target, "starts": ""})
    rows += [{"command": f"python -c 'import {module}'", "argv": [sys.executable, "-c", f"import {module}"],
              "stdin": None, "target": None, "starts": ""} for module in IMPORTS]
    return rows


def measure(rows: list[dict], runs: int) -> list[dict]:
    """Each row with its ``cold`` and ``warm`` seconds, ``output`` (first line) and ``usage_ok``."""
    measured = []
    for row in rows:
        results = [run_once(row["argv"], row["stdin"]) for _ in range(runs)]
        times = [seconds for seconds, _ in results]
        output = results[0][1]
        measured.append({**row, "cold": times[0], "warm": statistics.median(times[1:]) if runs > 1 else times[0],
                         "output": output, "usage_ok": output.startswith(row["starts"])})
    return measured


def verdict(row: dict) -> str:
    if row["target"] is None:
        return "none"
    met = row["warm"] <= row["target"] and row["usage_ok"]
    usage = "" if row["usage_ok"] else f", usage line wrong: {row['output']!r}"
    return f"≤ {row['target']:g} s: {'met' if met else '**missed**'}{usage}"


def markdown_table(rows: list[dict]) -> str:
    lines = ["| command | cold s | warm s (median) | target |", "|---|---:|---:|---|"]
    lines += [f"| `{row['command']}` | {row['cold']:.2f} | {row['warm']:.2f} | {verdict(row)} |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per command (first: cold)")
    parser.add_argument("--model_dir", help="a model folder to translate LINE with PyTorch (no row without it)")
    parser.add_argument("--export_dir", help="a folder written by hf-l2mt export to translate LINE with (no row without it)")
    parser.add_argument("--line", default="five hundred and twenty-one", help="the sentence translated")
    parser.add_argument("--check", action="store_true", help="exit with status 1 if a warm time misses its target")
    opts = parser.parse_args(argv)
    if opts.runs < 1:
        parser.error(f"--runs: got {opts.runs}; accepted: an integer >= 1")
    for flag in ("model_dir", "export_dir"):
        if getattr(opts, flag) is not None and not os.path.isdir(getattr(opts, flag)):
            parser.error(f"--{flag} {getattr(opts, flag)}: no such folder")
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())  # the machine is shared: say how busy it was
    rows = measure(planned_rows(opts.model_dir, opts.export_dir, opts.line), opts.runs)
    print(markdown_table(rows))
    print(f"load average before and after: {load_before}, {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    missed = [row["command"] for row in rows if "missed" in verdict(row)]
    if opts.check and missed:
        print(f"missed their targets: {', '.join(missed)}", file=sys.stderr)
        sys.exit(1)
    return rows


if __name__ == "__main__":
    main()
