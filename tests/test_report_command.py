"""``hf-l2mt report RUN_DIR``: the page a run wrote, rebuilt byte for byte from what it saved; a flag that changes
it is named, and a page it cannot explain is left as it was."""

import json
import re

import pytest

from hf_l2mt.apps import cli, demo
from hf_l2mt.apps.report.files import write_report_files
from hf_l2mt.apps.report.page import PAGE_FILE
from hf_l2mt.evaluation.forgetting import BASE, REPORT_FILE, RUN, build_report, save_report

SOURCES = {"general": ["the red house", "a green tree", "the old dog sleeps"], "news": ["rain today", "sun tomorrow"]}
REFERENCES = {"general": ["das rote Haus", "ein grüner Baum", "der alte Hund schläft"],
              "news": ["heute Regen", "morgen Sonne"]}
TRANSLATIONS = {
    BASE: {"general": ["das rote Haus", "ein grüner Baum", "der Hund"], "news": ["Regen", "Sonne"]},
    RUN: {"general": ["das Haus", "ein grüner Baum", "der alte Hund"], "news": ["heute Regen", "morgen Sonne"]},
}


def report_command(argv, capsys) -> str:
    cli.main(["report", *map(str, argv)])
    return capsys.readouterr().out.strip()


@pytest.fixture
def run_dir(tmp_path):
    """A run folder as a run leaves it: word frequencies counted in its training sources, 1 example per set."""
    report = build_report(REFERENCES, TRANSLATIONS, ["general"], resamples=100, sources=SOURCES)
    write_report_files(report, str(tmp_path), train_sources=["the red house"] * 4 + ["rain"],
                       train_name="the fine-tuning pairs", examples=1)
    return tmp_path


def test_without_flags_the_page_is_rebuilt_byte_for_byte(run_dir, capsys):
    written = (run_dir / PAGE_FILE).read_bytes()
    assert "occurs in the fine-tuning pairs" in written.decode("utf-8")
    assert report_command([run_dir], capsys) == (f"{run_dir / PAGE_FILE}: rebuilt from {REPORT_FILE}, the same page "
                                                 "byte for byte; left as it was")
    assert (run_dir / PAGE_FILE).read_bytes() == written
    (run_dir / PAGE_FILE).unlink()
    assert report_command([run_dir], capsys) == f"wrote {run_dir / PAGE_FILE}"
    assert (run_dir / PAGE_FILE).read_bytes() == written


def test_a_flag_that_changes_the_page_is_named_and_saved_for_the_next_rebuild(run_dir, capsys):
    train = run_dir / "train.en"
    train.write_text("the red house\n", encoding="utf-8")
    said = report_command([run_dir, "--metric", "bleu", "--examples", "2", "--train_source", train], capsys)
    assert said == (f"replaced {run_dir / PAGE_FILE}; it differs from the page there in: headline score: chrF -> BLEU "
                    "(--metric); examples per set: 1 -> 2 (--examples); word frequencies counted in: the fine-tuning "
                    "pairs -> the training data (train.en) (--train_source)")
    page = (run_dir / PAGE_FILE).read_text(encoding="utf-8")
    assert '<tr data-metric="bleu" class="headline">' in page and "occurs in the training data (train.en)" in page
    saved = json.loads((run_dir / REPORT_FILE).read_text(encoding="utf-8"))["page"]
    assert (saved["headline_metric"], saved["examples"], saved["word_counts"]) == ("bleu", 2, {"house": 1, "red": 1,
                                                                                             "the": 1})
    assert report_command([run_dir], capsys).endswith("the same page byte for byte; left as it was")


def test_a_page_it_cannot_explain_is_left_as_it_was(run_dir, capsys):
    (run_dir / PAGE_FILE).write_text("<p>edited by hand</p>", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["report", str(run_dir)])
    assert exit_info.value.code == 2
    assert re.search(r"forgetting_report\.html differs from the page rebuilt from forgetting_report\.json: the "
                     r"settings are the ones saved with the report, so the page there was written by another version "
                     r"of hf_l2mt or edited since; it is left as it was\. Write the rebuilt page elsewhere with "
                     r"--output PATH", capsys.readouterr().err)
    assert (run_dir / PAGE_FILE).read_text(encoding="utf-8") == "<p>edited by hand</p>"
    elsewhere = run_dir / "again.html"
    assert report_command([run_dir, "--output", elsewhere], capsys) == f"wrote {elsewhere}"


def test_a_report_that_saved_no_settings_says_so(tmp_path, capsys):
    report = build_report(REFERENCES, TRANSLATIONS, ["general"], resamples=100, sources=SOURCES)
    save_report(report, str(tmp_path / REPORT_FILE))
    (tmp_path / PAGE_FILE).write_text("<p>an older page</p>", encoding="utf-8")
    with pytest.raises(SystemExit):
        cli.main(["report", str(tmp_path)])
    assert "the report saved no page settings (it predates them)" in capsys.readouterr().err


def test_the_demos_page_is_rebuilt_as_it_was_and_names_the_command_the_user_ran(tmp_path, capsys):
    out = tmp_path / "my demo"
    cli.main(["demo", "--tiny", "--output_dir", str(out), "--cache_dir", str(tmp_path / "cache"),
              "--l2sp_lambdas", "0", "3"])
    capsys.readouterr()
    report = json.loads((out / REPORT_FILE).read_text(encoding="utf-8"))
    assert report["command"] == (f"hf-l2mt demo --tiny --output_dir '{out}' --cache_dir {tmp_path / 'cache'} "
                                 "--l2sp_lambdas 0 3")
    written = (out / PAGE_FILE).read_bytes()
    assert report_command([out], capsys).endswith("the same page byte for byte; left as it was")
    assert (out / PAGE_FILE).read_bytes() == written


@pytest.mark.parametrize(("argv0", "argv", "start"), [
    ("/venv/bin/hf-l2mt", [], ["hf-l2mt", "demo"]),
    ("/site-packages/hf_l2mt/apps/cli/__main__.py", [], ["python", "-m", "hf_l2mt.apps.cli", "demo"]),
    ("/site-packages/hf_l2mt/apps/demo/__main__.py", None, ["python", "-m", "hf_l2mt.apps.demo"]),
])
def test_the_demo_names_the_launcher_the_user_typed(argv0, argv, start, monkeypatch):
    monkeypatch.setattr("sys.argv", [argv0])
    assert demo.launcher(argv) == start
