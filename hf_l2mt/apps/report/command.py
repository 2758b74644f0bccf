"""``hf-l2mt report RUN_DIR``: the page of a run's forgetting report, rebuilt from what the run saved.

The run saved the report and the page's settings (``forgetting_report.json``, under ``"page"``), so without
flags the page comes out byte for byte as the run wrote it. A flag that changes a setting changes the page;
the command then says which setting differs from the page there, and records the new settings in the JSON
when it replaces the run's own page. A page that differs for no reason it can name (written by another
version of hf_l2mt, or edited) is left as it was: it is never replaced by another without a word.
"""

import json
import os

from ...evaluation.forgetting import save_report
from ...evaluation.report_names import REPORT_FILE, SCORE_TITLES
from .page import page_settings, render_page, write_html
from .settings import PAGE_FILE, ReportSettings


def read_report(run_dir: str) -> dict:
    """RUN_DIR/forgetting_report.json, or an error naming the file and what it lacks."""
    json_path = os.path.join(run_dir, REPORT_FILE)
    if not os.path.isfile(json_path):
        raise ValueError(
            f"RUN_DIR {run_dir}: no {REPORT_FILE}; accepted: a run folder where hf-l2mt evaluate --base, "
            "a recipe run with a general set, or the demo wrote one"
        )
    with open(json_path, encoding="utf-8") as handle:
        try:
            report = json.load(handle)
        except json.JSONDecodeError as err:
            raise ValueError(f"{json_path}: not JSON ({err})") from None
    if not isinstance(report, dict) or "sets" not in report or "compared" not in report:
        raise ValueError(f"{json_path}: not a forgetting report (no 'sets' and 'compared'); write it with "
                         "hf-l2mt evaluate --base")
    return report


def requested_settings(report: dict, settings: ReportSettings) -> dict:
    """The saved page settings (for a report that saved none: the defaults), with the flags given applied."""
    saved = report.get("page") or page_settings(report)
    requested = dict(saved)
    if settings.metric is not None:
        requested["headline_metric"] = settings.metric
    if settings.examples is not None:
        requested["examples"] = settings.examples
    if settings.train_source is not None:
        with open(settings.train_source, encoding="utf-8") as handle:
            counted = page_settings(report, train_sources=handle.read().splitlines(),
                                    train_name=f"the training data ({os.path.basename(settings.train_source)})")
        requested.update(words_counted_in=counted["words_counted_in"], word_counts=counted["word_counts"])
    return requested


def setting_changes(saved: dict, requested: dict) -> list[str]:
    """Each setting in which ``requested`` differs from ``saved``, as "what: before -> now (flag)"."""
    changes = []
    if saved["headline_metric"] != requested["headline_metric"]:
        changes.append(f"headline score: {SCORE_TITLES[saved['headline_metric']]} -> "
                       f"{SCORE_TITLES[requested['headline_metric']]} (--metric)")
    if saved["examples"] != requested["examples"]:
        changes.append(f"examples per set: {saved['examples']} -> {requested['examples']} (--examples)")
    if (saved["words_counted_in"], saved["word_counts"]) != (requested["words_counted_in"], requested["word_counts"]):
        where = [setting["words_counted_in"] or "each test set itself" for setting in (saved, requested)]
        changes.append(f"word frequencies counted in: {where[0]} -> {where[1]} (--train_source)")
    return changes


def run_report(settings: ReportSettings) -> str:
    """``hf-l2mt report``: the page rebuilt from RUN_DIR/forgetting_report.json; returns what happened, in words."""
    report = read_report(settings.run_dir)
    saved = report.get("page")
    requested = requested_settings(report, settings)
    html = render_page(report, requested)
    path = settings.output or os.path.join(settings.run_dir, PAGE_FILE)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            if handle.read() == html:
                return f"{path}: rebuilt from {REPORT_FILE}, the same page byte for byte; left as it was"
        changes = setting_changes(saved or requested, requested)
        if not changes:
            why = ("the report saved no page settings (it predates them), so the page there may come from other "
                   "--train_source, --examples or --metric values" if saved is None
                   else "the settings are the ones saved with the report, so the page there was written by another "
                   "version of hf_l2mt or edited since")
            raise ValueError(
                f"{path} differs from the page rebuilt from {REPORT_FILE}: {why}; it is left as it was. Write the "
                "rebuilt page elsewhere with --output PATH, or delete it first"
            )
        done = f"replaced {path}; it differs from the page there in: " + "; ".join(changes)
    else:
        done = f"wrote {path}"
    write_html(html, path)
    if settings.output is None and requested != saved:
        # The run's own page now has these settings: saved with the report, the next rebuild gives this page.
        save_report({**report, "page": requested}, os.path.join(settings.run_dir, REPORT_FILE))
    return done
