"""Start-up time of the ``hf-l2mt`` command: ``hf-l2mt --help`` and ``hf-l2mt COMMAND --help``, each run
``--runs`` times as a fresh process. Cold is the first run (files maybe not yet in the page cache), warm the
median of the others. Listing a recipe's flags (``train RECIPE --help``) needs the Trainer's arguments,
which import torch, so it is measured but has no target; so are the bare imports that the commands'
times are made of (Python alone, transformers, ``transformers.training_args``), for comparison.

    python -m benchmarks.startup_time --runs 5
    python -m benchmarks.startup_time --runs 5 --check   # exit 1 if a warm time misses its target
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_SECONDS = 1.0
# (arguments after hf-l2mt, target in seconds or None)
COMMANDS = [
    ([], TARGET_SECONDS),
    (["train"], TARGET_SECONDS),
    (["evaluate"], TARGET_SECONDS),
    (["translate"], TARGET_SECONDS),
    (["fisher"], TARGET_SECONDS),
    (["search"], TARGET_SECONDS),
    (["plot"], TARGET_SECONDS),
    (["report"], TARGET_SECONDS),
    (["export"], TARGET_SECONDS),
    (["average"], TARGET_SECONDS),
    (["demo"], TARGET_SECONDS),
    (["train", "en_de"], None),
]
# What the rows above are made of, measured alongside them: Python alone, then the imports.
IMPORTS = ["sys", "transformers", "transformers.training_args"]


def console_script() -> list[str]:
    """The installed ``hf-l2mt`` next to this Python, else the module it runs."""
    script = os.path.join(os.path.dirname(sys.executable), "hf-l2mt")
    return [script] if os.path.isfile(script) else [sys.executable, "-m", "hf_l2mt.apps.cli"]


def seconds_to_run(command: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": ROOT}  # this checkout's hf_l2mt
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(runs: int) -> list[dict]:
    runs_to_time = [(" ".join(["hf-l2mt", *arguments, "--help"]), [*console_script(), *arguments, "--help"], target)
                    for arguments, target in COMMANDS]
    runs_to_time += [(f"python -c 'import {module}'", [sys.executable, "-c", f"import {module}"], None)
                     for module in IMPORTS]
    rows = []
    for label, command, target in runs_to_time:
        times = [seconds_to_run(command) for _ in range(runs)]
        warm = statistics.median(times[1:]) if runs > 1 else times[0]
        rows.append({"command": label, "target": target, "cold": times[0], "warm": warm})
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = ["| command | cold s | warm s (median) | target |", "|---|---:|---:|---|"]
    for row in rows:
        target = "none" if row["target"] is None else (
            f"< {row['target']:g} s: {'met' if row['warm'] < row['target'] else '**missed**'}")
        lines.append(f"| `{row['command']}` | {row['cold']:.2f} | {row['warm']:.2f} | {target} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per command (first: cold)")
    parser.add_argument("--check", action="store_true", help="exit with status 1 if a warm time misses its target")
    opts = parser.parse_args(argv)
    if opts.runs < 1:
        parser.error(f"--runs: got {opts.runs}; accepted: an integer >= 1")
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())  # the machine is shared: say how busy it was
    rows = measure(opts.runs)
    print(markdown_table(rows))
    print(f"load average before and after: {load_before}, {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    missed = [row["command"] for row in rows if row["target"] is not None and row["warm"] >= row["target"]]
    if opts.check and missed:
        print(f"missed the {TARGET_SECONDS:g} s target: {', '.join(missed)}", file=sys.stderr)
        sys.exit(1)
    return rows


if __name__ == "__main__":
    main()
