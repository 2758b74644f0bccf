"""transformers' own Trainer tests, run as they are and with the Trainer swapped for L2MTTrainer.

With every regularizer off, L2MTTrainer promises to behave exactly as transformers' Trainer /
Seq2SeqTrainer. This holds it to transformers' tests: tests/trainer/test_trainer*.py of a checkout of
transformers' tests/ folder that matches the installed version, run twice, each in a fresh pytest:

  unswapped   as they are
  swapped     transformers.Trainer and Seq2SeqTrainer replaced by SwappedTrainer (L2MTTrainer as it is),
              TrainingArguments and Seq2SeqTrainingArguments by SwappedTrainingArguments (L2MTTrainingArguments
              with nonfinite_loss="continue", Trainer's behaviour on a NaN loss; every regularizer off)

and prints each test's two outcomes, then the tests that fail only when swapped. Offline (HF_HUB_OFFLINE=1):
a test that needs the Hub is reported as skipped in both runs. Exit status 1 when a test fails only swapped.

    python -m benchmarks.upstream_trainer_tests --tests_dir ~/src/transformers/tests
    python -m benchmarks.upstream_trainer_tests --tests_dir ~/src/transformers/tests --files test_trainer.py \\
        -k "evaluate or resume" --workers 2

The names are swapped in the ``transformers`` namespace before the test modules are imported, so ``from
transformers import Trainer`` and classes that subclass it at import time get ours; a name a test module
imports from a submodule (``from transformers.trainer import Trainer``) is swapped in that module after its
import. This module is also the pytest plugin both runs load (``-p benchmarks.upstream_trainer_tests``).
"""

import argparse
import dataclasses
import glob
import json
import os
import subprocess
import sys
import tempfile

SWAP_VARIABLE = "HF_L2MT_SWAP_TRAINER"  # "1": the plugin swaps the names
OUTCOMES_VARIABLE = "HF_L2MT_TEST_OUTCOMES"  # where the plugin writes {test id: outcome}
SWAPPED_NAMES = ("Trainer", "Seq2SeqTrainer", "TrainingArguments", "Seq2SeqTrainingArguments")
RUNS = ("unswapped", "swapped")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Errors that only say the Hub (or another host) could not be reached: the test needs the network. transformers
# 5.25 raises the last one, with no cause attached, for a processor or feature extractor it cannot fetch.
OFFLINE_MESSAGES = ("offline mode", "couldn't connect to", "local_files_only", "couldn't reach",
                    "not found in the cached files", "failed to resolve", "hf_hub_offline",
                    "if you were trying to load it from 'https://huggingface.co")


# ---- The pytest plugin --------------------------------------------------------------------------------


def swapped_classes() -> dict:
    """{name in transformers: our thin subclass}: defined at module level, so that ``torch.save`` can pickle
    the arguments into ``training_args.bin`` as ``Trainer`` does."""
    return {"Trainer": SwappedTrainer, "Seq2SeqTrainer": SwappedTrainer,
            "TrainingArguments": SwappedTrainingArguments, "Seq2SeqTrainingArguments": SwappedTrainingArguments}


if os.environ.get(SWAP_VARIABLE) == "1":
    from hf_l2mt import L2MTTrainer, L2MTTrainingArguments

    @dataclasses.dataclass
    class SwappedTrainingArguments(L2MTTrainingArguments):
        """L2MTTrainingArguments as transformers' tests get them: every regularizer off (the defaults), and a NaN
        loss trained through as Trainer does (``nonfinite_loss`` "continue" where ours defaults to "stop")."""

        nonfinite_loss: str = dataclasses.field(
            default="continue", metadata=L2MTTrainingArguments.__dataclass_fields__["nonfinite_loss"].metadata
        )

    class SwappedTrainer(L2MTTrainer):
        """L2MTTrainer as it is, under the name transformers' tests use."""


ORIGINALS: dict[str, type] = {}  # transformers' own classes, once swapped
OUTCOMES: dict[str, str] = {}  # {test id: outcome} of this run


def pytest_configure(config):
    if os.environ.get(SWAP_VARIABLE) == "1":
        import transformers

        ORIGINALS.update({name: getattr(transformers, name) for name in SWAPPED_NAMES})
        for name, cls in swapped_classes().items():
            setattr(transformers, name, cls)


def pytest_collection_modifyitems(session, config, items):
    if not ORIGINALS:
        return
    swapped = swapped_classes()
    for module in {id(item.module): item.module for item in items if getattr(item, "module", None)}.values():
        for name in SWAPPED_NAMES:
            if getattr(module, name, None) is ORIGINALS[name]:
                setattr(module, name, swapped[name])


def needs_the_network(error: BaseException | None) -> bool:
    """``error``, or one it was raised from, says a host could not be reached or offline mode forbade it."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        kind = type(error).__name__
        if kind in ("OfflineModeIsEnabled", "LocalEntryNotFoundError", "ConnectError", "ConnectionError"):
            return True
        if any(text in str(error).lower() for text in OFFLINE_MESSAGES):
            return True
        error = error.__cause__ or error.__context__
    return False


def pytest_runtest_makereport(item, call):
    """A test that failed only for want of the network is reported as skipped."""
    if call.excinfo is not None and call.when in ("setup", "call") and needs_the_network(call.excinfo.value):
        from _pytest.reports import TestReport

        report = TestReport.from_item_and_call(item, call)
        reason = f"needs the Hub (offline): {str(call.excinfo.value).splitlines()[0][:120]}"
        report.outcome, report.longrepr = "skipped", (str(item.path), item.location[1] or 0, reason)
        return report
    return None


def pytest_runtest_logreport(report):
    """A test's outcome: "error" when its setup or teardown failed, else that of its call (the worst of its
    subtests')."""
    if report.when == "call" or report.outcome != "passed":
        if report.failed:
            outcome = "failed" if report.when == "call" else "error"
        else:
            outcome = report.outcome
        if OUTCOMES.get(report.nodeid) not in ("failed", "error"):
            OUTCOMES[report.nodeid] = outcome


def pytest_collectreport(report):
    """A test file that cannot be imported counts as one test in error, named by its path."""
    if report.failed:
        OUTCOMES[report.nodeid] = "error"


def pytest_sessionfinish(session):
    path = os.environ.get(OUTCOMES_VARIABLE)
    if path and not hasattr(session.config, "workerinput"):  # the controller writes, not pytest-xdist's workers
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(OUTCOMES, handle, indent=1, sort_keys=True)


# ---- The runner ---------------------------------------------------------------------------------------


def trainer_test_files(tests_dir: str, files: list[str] | None) -> list[str]:
    """The test files to run, checked: ``tests_dir`` must be transformers' tests/ package."""
    trainer_dir = os.path.join(tests_dir, "trainer")
    for package in (tests_dir, trainer_dir):
        if not os.path.isfile(os.path.join(package, "__init__.py")):
            raise SystemExit(
                f"--tests_dir: {package} has no __init__.py; give the tests/ folder of a transformers checkout "
                "(its test files import each other as the package tests.trainer)"
            )
    if not files:
        found = sorted(glob.glob(os.path.join(trainer_dir, "test_trainer*.py")))
        if not found:
            raise SystemExit(f"--tests_dir: no test_trainer*.py in {trainer_dir}")
        return found
    missing = [name for name in files if not os.path.isfile(os.path.join(trainer_dir, name))]
    if missing:
        present = ", ".join(sorted(os.path.basename(p) for p in glob.glob(os.path.join(trainer_dir, "test_*.py"))))
        raise SystemExit(f"--files: {', '.join(missing)} not in {trainer_dir}; it has: {present}")
    return [os.path.join(trainer_dir, name) for name in files]


def run_pytest(run: str, files: list[str], tests_dir: str, work_dir: str, keyword: str | None, workers: int) -> dict:
    """One pytest process over ``files``; returns {test id: outcome} and writes its output to ``run``.log."""
    outcomes_path = os.path.join(work_dir, f"{run}.json")
    ini = os.path.join(work_dir, "pytest.ini")
    with open(ini, "w", encoding="utf-8") as handle:
        handle.write("[pytest]\n")  # the checkout's own configuration may name plugins this machine lacks
    command = [sys.executable, "-m", "pytest", *files, "-p", "benchmarks.upstream_trainer_tests",
               "-p", "no:cacheprovider", "-q", "-rN", "--continue-on-collection-errors", "-c", ini,
               "--rootdir", os.path.dirname(tests_dir)]
    if keyword:
        command += ["-k", keyword]
    if workers > 1:
        command += ["-n", str(workers)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           SWAP_VARIABLE: "1" if run == "swapped" else "0", OUTCOMES_VARIABLE: outcomes_path,
           "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    log_path = os.path.join(work_dir, f"{run}.log")
    run_dir = os.path.join(work_dir, run)  # the tests' relative output folders land here
    os.makedirs(run_dir, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        finished = subprocess.run(command, cwd=run_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    if not os.path.isfile(outcomes_path):
        raise SystemExit(f"the {run} run (exit status {finished.returncode}) reported nothing; see {log_path}")
    with open(outcomes_path, encoding="utf-8") as handle:
        return json.load(handle)


def compare(outcomes: dict[str, dict[str, str]]) -> dict:
    """Counts per run, every test's pair of outcomes, and the tests whose outcomes differ."""
    tests = sorted(set(outcomes["unswapped"]) | set(outcomes["swapped"]))
    pairs = {test: tuple(outcomes[run].get(test, "not run") for run in RUNS) for test in tests}
    bad = ("failed", "error")
    counts = {run: {} for run in RUNS}
    for run in RUNS:
        for outcome in outcomes[run].values():
            counts[run][outcome] = counts[run].get(outcome, 0) + 1
    return {
        "counts": counts,
        "tests": {test: dict(zip(RUNS, pair)) for test, pair in pairs.items()},
        "fail_only_swapped": [t for t, (u, s) in pairs.items() if s in bad and u not in bad],
        "fail_only_unswapped": [t for t, (u, s) in pairs.items() if u in bad and s not in bad],
        "otherwise_different": [t for t, (u, s) in pairs.items() if u != s and (u in bad) == (s in bad)],
    }


def report(result: dict, only_different: bool) -> str:
    tests = result["tests"]
    shown = [t for t in tests if tests[t]["unswapped"] != tests[t]["swapped"]] if only_different else list(tests)
    width = max([len("test"), *(len(t) for t in shown)])
    lines = [f"{'test':<{width}}  {'unswapped':<10} swapped", f"{'-' * width}  {'-' * 10} {'-' * 10}"]
    lines += [f"{t:<{width}}  {tests[t]['unswapped']:<10} {tests[t]['swapped']}" for t in shown]
    lines.append("")
    for run in RUNS:
        counts = result["counts"][run]
        kinds = ("passed", "failed", "error", "skipped")
        lines.append(f"{run:<10} " + ", ".join(f"{counts.get(kind, 0)} {kind}" for kind in kinds))
    for key, title in (("fail_only_swapped", "fail only with L2MTTrainer"),
                       ("fail_only_unswapped", "fail only with transformers' Trainer"),
                       ("otherwise_different", "other differences (e.g. skipped in one run)")):
        lines.append(f"\n{title}: {len(result[key])}")
        lines += [f"  {t}" for t in result[key]]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests_dir", required=True,
                        help="the tests/ folder of a transformers checkout matching the installed transformers")
    parser.add_argument("--files", nargs="+", help="test files under tests_dir/trainer (default: test_trainer*.py)")
    parser.add_argument("-k", dest="keyword", help="pytest's -k expression, to run a subset")
    parser.add_argument("--workers", type=int, default=1, help="pytest-xdist processes per run (1: no xdist)")
    parser.add_argument("--work_dir", help="where the logs, outcomes and the tests' outputs go (default: a new "
                        "temporary folder)")
    parser.add_argument("--only_different", action="store_true", help="list only the tests whose outcomes differ")
    parser.add_argument("--json", help="also write the result here")
    opts = parser.parse_args(argv)
    tests_dir = os.path.abspath(os.path.expanduser(opts.tests_dir))
    if not os.path.isdir(tests_dir):
        raise SystemExit(f"--tests_dir: {opts.tests_dir!r} is not a directory; give transformers' tests/ folder")
    files = trainer_test_files(tests_dir, opts.files)
    work_dir = opts.work_dir or tempfile.mkdtemp(prefix="upstream_trainer_tests_")
    os.makedirs(work_dir, exist_ok=True)
    outcomes = {run: run_pytest(run, files, tests_dir, work_dir, opts.keyword, opts.workers) for run in RUNS}
    result = compare(outcomes)
    print(report(result, opts.only_different))
    print(f"\nlogs: {work_dir}/unswapped.log, {work_dir}/swapped.log")
    if opts.json:
        with open(opts.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)
    return 1 if result["fail_only_swapped"] else 0


if __name__ == "__main__":
    sys.exit(main())
