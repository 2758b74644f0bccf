"""The demo's table against the README's, and the demo run under several machine conditions side by side.

    hf-l2mt demo | tee demo.txt
    python -m benchmarks.demo_table check demo.txt                # exit 1 if a cell is off by more than 1 point
    python -m benchmarks.demo_table reproduce --save_dir outputs/demo_runs   # about 20 minutes on 2 cores

``check`` reads the table the demo printed and the one in README.md (the block after "What `hf-l2mt demo`
printed"), compares every cell (±``--tolerance`` points, 1 by default: 5 of the 500 held-out numbers) and
the best-balanced model, and prints both side by side. ``reproduce`` runs the full demo (cold cache, a
fresh HOME each) on one core with ``OMP_NUM_THREADS=1``, on two cores with ``OMP_NUM_THREADS=2``, and on
two cores while another process keeps one core busy, then prints the three tables and the largest
difference between them: the demo's arithmetic must not depend on any of these (demo/reproducible.py).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
README_MARKER = "What `hf-l2mt demo` printed"
BEST_LINE = re.compile(r"^Best balance \(highest mean exact match\): (\S+);")
# (name, CPU cores it may use, OMP_NUM_THREADS, with a busy process beside it)
CONDITIONS = [
    ("one core, OMP_NUM_THREADS=1", "0", "1", False),
    ("two cores, OMP_NUM_THREADS=2", "0,1", "2", False),
    ("two cores, one kept busy by another process", "0,1", "2", True),
]
BUSY_LOOP = "while True: pass"


def read_demo_output(text: str) -> tuple[dict[str, list[float]], list[str], str | None]:
    """``({model: cells}, header, best model)`` from what the demo printed: the first table whose header
    starts with ``model``, up to the first blank line, and the "Best balance" line."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"^model\s+\S+ exact", line)), None)
    if start is None:
        raise ValueError("no demo table found (a line starting 'model  ... exact'): did the demo finish?")
    header = re.split(r"\s{2,}", lines[start].strip())
    rows = {}
    for line in lines[start + 1:]:
        if not line.strip():
            break
        name, *cells = line.split()
        rows[name] = [float(cell) for cell in cells]
    best = next((m.group(1) for line in lines if (m := BEST_LINE.match(line))), None)
    return rows, header, best


def readme_block(path: str = README) -> str:
    """The fenced block after README_MARKER in ``path``."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    at = text.find(README_MARKER)
    if at < 0:
        raise ValueError(f"{path}: no line containing {README_MARKER!r}")
    match = re.search(r"```\n(.*?)```", text[at:], re.S)
    if match is None:
        raise ValueError(f"{path}: no fenced block after {README_MARKER!r}")
    return match.group(1)


def compare(expected: tuple, measured: tuple, tolerance: float) -> tuple[list[str], float]:
    """Side-by-side lines (measured, expected in brackets) and the largest absolute difference; rows or
    columns that do not match count as an infinite difference."""
    (rows_a, header_a, best_a), (rows_b, header_b, best_b) = expected, measured
    worst = 0.0 if (header_a == header_b and rows_a.keys() == rows_b.keys() and best_a == best_b) else float("inf")
    lines = ["  ".join([f"{'model':<12}", *(f"{name:>22}" for name in header_b[1:])])]
    for name, cells in rows_b.items():
        wanted = rows_a.get(name, [float("nan")] * len(cells))
        shown = []
        for got, want in zip(cells, wanted):
            off = abs(got - want)
            worst = max(worst, off if off == off else float("inf"))  # NaN: a row missing from the expected table
            shown.append(f"{got:6.1f} ({want:5.1f}){' <-' if not off <= tolerance else '   '}")
        lines.append("  ".join([f"{name:<12}", *(f"{cell:>22}" for cell in shown)]))
    lines.append(f"best balance: {best_b} (expected {best_a})")
    return lines, worst


def check(args) -> int:
    with open(args.output, encoding="utf-8") as handle:
        measured = read_demo_output(handle.read())
    expected = read_demo_output(readme_block(args.readme))
    lines, worst = compare(expected, measured, args.tolerance)
    print(f"the demo's table, {args.readme}'s in brackets:")
    print("\n".join(lines))
    verdict = "matches" if worst <= args.tolerance else "does NOT match"
    print(f"largest difference {worst:.1f} points: {verdict} the README (tolerance {args.tolerance:g})")
    return 0 if worst <= args.tolerance else 1


def run_demo(condition: tuple, save_dir: str) -> str:
    name, cores, omp_threads, busy = condition
    slug = re.sub(r"\W+", "_", name).strip("_")
    home = tempfile.mkdtemp(prefix="demo-home-")  # a cold cache: the tokenizer and the base are trained again
    env = {**os.environ, "HOME": home, "OMP_NUM_THREADS": omp_threads, "PYTHONPATH": ROOT}
    command = ["taskset", "-c", cores, sys.executable, "-m", "hf_l2mt.apps.demo",
               "--output_dir", os.path.join(save_dir, slug)]
    loader = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if busy else None
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True)
    finally:
        if loader is not None:
            loader.kill()
    with open(os.path.join(save_dir, f"{slug}.txt"), "w", encoding="utf-8") as handle:
        handle.write(result.stdout + result.stderr)
    if result.returncode:
        raise SystemExit(f"{name}: the demo exited with {result.returncode}; see {save_dir}/{slug}.txt")
    return result.stdout


def reproduce(args) -> int:
    os.makedirs(args.save_dir, exist_ok=True)
    tables = [(condition[0], read_demo_output(run_demo(condition, args.save_dir))) for condition in CONDITIONS]
    worst = 0.0
    for name, table in tables:
        lines, off = compare(tables[0][1], table, args.tolerance)
        worst = max(worst, off)
        print(f"\n{name} (first run's numbers in brackets):")
        print("\n".join(lines))
    print(f"\nlargest difference between the runs: {worst:.1f} points")
    return 0 if worst <= args.tolerance else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    checking = commands.add_parser("check", help="compare a demo output with the README's table")
    checking.add_argument("output", help="a file holding what `hf-l2mt demo` printed")
    checking.add_argument("--readme", default=README)
    checking.add_argument("--tolerance", type=float, default=1.0, help="points of difference allowed per cell")
    reproducing = commands.add_parser("reproduce", help="run the demo under three conditions and compare")
    reproducing.add_argument("--save_dir", required=True, help="where each run's output and model go")
    reproducing.add_argument("--tolerance", type=float, default=1.0)
    args = parser.parse_args(argv)
    try:
        return check(args) if args.command == "check" else reproduce(args)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
