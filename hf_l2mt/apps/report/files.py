"""The forgetting report as the three files of a run's folder: ``forgetting_report.json``, with matplotlib
``forgetting_report.png`` (``plot``), and the page, ``forgetting_report.html`` (``page``); and the lines that say
where they went. This module imports the page and the plot, the page imports the plot, and the plot neither."""

import logging
import os

from ...evaluation.forgetting import REPORT_FILE, format_report, save_report
from .page import page_settings, write_page
from .plot import PLOT_FILE, plot_forgetting
from .settings import PAGE_FILE

logger = logging.getLogger(__name__)


def write_report_files(report: dict, output_dir: str, **page_options) -> dict[str, str | None]:
    """``forgetting_report.json``, with matplotlib ``forgetting_report.png``, and ``forgetting_report.html`` in
    ``output_dir``. ``page_options`` go to ``page.page_settings`` (the training sources, for word
    frequencies); the JSON keeps those settings under ``"page"``, so that ``hf-l2mt report`` rebuilds this page."""
    settings = page_settings(report, **page_options)
    report = {**report, "page": settings}
    paths = {"json": save_report(report, os.path.join(output_dir, REPORT_FILE)), "png": None}
    try:
        paths["png"] = plot_forgetting(report, os.path.join(output_dir, PLOT_FILE), settings["headline_metric"])
    except ImportError as err:
        logger.warning("forgetting report: no PNG (%s)", err)
    paths["html"] = write_page(report, os.path.join(output_dir, PAGE_FILE), settings, png_path=paths["png"])
    return paths


def log_report(report: dict, paths: dict) -> str:
    """The table, then where the files went: what ``hf-l2mt evaluate --base`` prints and a run logs."""
    where = [f"every number, with sacreBLEU signatures: {paths['json']}"]
    if paths["png"]:
        where.append(f"general-domain against in-domain score: {paths['png']}")
    if paths.get("html"):
        where.append(f"the page to look at: {paths['html']}")
    return format_report(report) + "\n\n" + "\n".join(where)
