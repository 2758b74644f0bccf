"""The forgetting report's page: buckets, examples and character diffs from the report's sentences, the
``hf-l2mt report`` command, and the page loaded in a real browser (Chromium through selenium)."""

import json
import re
import shutil

import pytest
from sacrebleu.metrics import CHRF

from hf_l2mt.apps import cli
from hf_l2mt.apps.report.page import (
    FREQUENCY_BUCKETS,
    LENGTH_BUCKETS,
    PAGE_FILE,
    bucket_scores,
    char_diff,
    extreme_examples,
    page_settings,
    render_page,
    word_counts,
    words,
)
from hf_l2mt.evaluation.forgetting import BASE, REPORT_FILE, RUN, build_report, save_report, verdict
from hf_l2mt.evaluation.significance import format_p_value

# Line 2 forgets most (exact -> wrong), line 4 forgets a little, line 5 learns most, line 3 learns a little.
SOURCES = {
    "general": ["the house is red", "<script>alert('x')</script> rare", "a cat sleeps", "the house is blue",
                "the dog runs fast and far away every single morning"],
    "medical": ["take one pill", "see a doctor", "rest today"],
}
REFERENCES = {
    "general": ["das Haus ist rot", "seltenes Wort <b>", "eine Katze schläft", "das Haus ist blau",
                "der Hund rennt jeden Morgen schnell und weit weg"],
    "medical": ["nimm eine Tablette", "geh zum Arzt", "ruh dich heute aus"],
}
BASE_OUT = {
    "general": ["das Haus ist rot", "seltenes Wort <b>", "eine Katze schlief", "das Haus ist blau", "der Hund"],
    "medical": ["nimm Pille", "sieh Doktor", "ruhe"],
}
RUN_OUT = {
    "general": ["das Haus ist rot", "Wort", "eine Katze schläft", "das Haus ist blass",
                "der Hund rennt jeden Morgen schnell und weit weg"],
    "medical": ["nimm eine Tablette", "geh zum Arzt", "ruh dich heute aus"],
}
PLAIN_OUT = {"general": ["x"] * 5, "medical": ["nimm eine Tablette", "geh zum Arzt", "ruh dich aus"]}


@pytest.fixture(scope="module")
def report():
    translations = {BASE: BASE_OUT, RUN: RUN_OUT, "plain": PLAIN_OUT}
    return build_report(REFERENCES, translations, ["general"], models={BASE: "base/", RUN: "runs/l2sp"},
                        resamples=200, sources=SOURCES)


@pytest.fixture(scope="module")
def run_dir(report, tmp_path_factory):
    path = tmp_path_factory.mktemp("run")
    save_report(report, str(path / REPORT_FILE))
    cli.main(["report", str(path), "--examples", "2"])
    return path


def sentence_change(set_name: str, line: int) -> float:
    chrf = CHRF()
    ref = REFERENCES[set_name][line - 1]
    return (chrf.sentence_score(RUN_OUT[set_name][line - 1], [ref]).score
            - chrf.sentence_score(BASE_OUT[set_name][line - 1], [ref]).score)


def test_report_keeps_every_sentence_of_every_model(report):
    sentences = report["sets"]["general"]["sentences"]
    assert sentences["source"] == SOURCES["general"] and sentences["reference"] == REFERENCES["general"]
    assert sentences["translations"] == {BASE: BASE_OUT["general"], RUN: RUN_OUT["general"],
                                         "plain": PLAIN_OUT["general"]}


def test_char_diff_marks_only_what_differs_and_escapes_html():
    old, new = char_diff("<script>x</script> Haus", "<script>y</script> Haus!")
    assert old == "&lt;script&gt;<del>x</del>&lt;/script&gt; Haus"
    assert new == "&lt;script&gt;<ins>y</ins>&lt;/script&gt; Haus<ins>!</ins>"
    unmarked = re.sub(r"</?(del|ins)>", "", str(new))
    assert unmarked == "&lt;script&gt;y&lt;/script&gt; Haus!"


def test_examples_are_the_sentences_that_changed_most(report):
    examples = extreme_examples(report["sets"]["general"]["sentences"], 2)
    changes = {line: sentence_change("general", line) for line in range(1, 6)}
    worse = sorted((line for line in changes if changes[line] < 0), key=changes.get)[:2]
    better = sorted((line for line in changes if changes[line] > 0), key=lambda line: -changes[line])[:2]
    assert [row["line"] for row in examples["worse"]] == worse == [2, 4]
    assert [row["line"] for row in examples["better"]] == better == [5, 3]
    assert examples["worse"][0]["change"] == pytest.approx(changes[2])


def test_bucket_scores_are_corpus_chrf_of_their_sentences(report):
    sentences = report["sets"]["general"]["sentences"]
    lengths = [len(words(source)) for source in SOURCES["general"]]
    assert lengths == [4, 5, 3, 4, 10]  # "<script>alert('x')</script> rare": script, alert, x, script, rare
    rows = bucket_scores(lengths, sentences, LENGTH_BUCKETS, [BASE, RUN])
    assert [(row["label"], row["count"]) for row in rows] == [("1–5", 4), ("6–10", 1)]
    expected = CHRF().corpus_score([RUN_OUT["general"][4]], [[REFERENCES["general"][4]]]).score
    assert rows[1]["scores"][RUN] == pytest.approx(expected)
    assert rows[0]["change"] == pytest.approx(rows[0]["scores"][RUN] - rows[0]["scores"][BASE])
    counts = word_counts(SOURCES["general"])
    assert counts["house"] == 2 and counts["rare"] == 1
    unseen = bucket_scores([0, 0, 1, 2, 100], sentences, FREQUENCY_BUCKETS, [BASE, RUN])
    assert [row["label"] for row in unseen] == ["0", "1", "2–4", "100+"]


def test_frequencies_come_from_the_training_sources_when_given(report):
    settings = page_settings(report, train_sources=["the house is"] * 3 + ["zebra"], train_name="the fine-tuning pairs")
    # Only the counts of words in the report's sources are kept: all the buckets read.
    assert settings["word_counts"] == {"house": 3, "is": 3, "the": 3}
    page = render_page(report, settings)
    assert "occurs in the fine-tuning pairs" in page
    assert "occurs in each test set itself" in render_page(report, page_settings(report))


def test_report_command_writes_a_page_with_escaped_sources(run_dir, capsys):
    page = (run_dir / PAGE_FILE).read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; rare" in page
    assert "http://" not in page and "https://" not in page  # nothing fetched
    assert "Glossary terms" not in page


def test_glossary_section_shows_only_when_the_report_has_one(report):
    with_glossary = dict(report, glossary={"missed": [{"term": "pill", "expected": "Tablette"}]})
    page = render_page(with_glossary)
    assert "Glossary terms" in page and "<td>Tablette</td>" in page


def test_a_report_without_sentences_gets_table_and_plot_only(report, tmp_path):
    old = json.loads(json.dumps(report))
    for entry in old["sets"].values():
        del entry["sentences"]
    save_report(old, str(tmp_path / REPORT_FILE))
    cli.main(["report", str(tmp_path)])
    page = (tmp_path / PAGE_FILE).read_text(encoding="utf-8")
    assert "The report holds no sentences for general" in page
    assert 'data-examples="worse"' not in page


@pytest.mark.parametrize(("flags", "message"), [
    (["{missing}"], r"RUN_DIR .*nowhere: no forgetting_report\.json; accepted: a run folder"),
    (["{run}", "--examples", "-1"], r"--examples: got -1; accepted: an integer >= 0"),
    (["{run}", "--train_source", "{missing}/train.en"], r"--train_source .*nowhere/train\.en: no such file"),
])
def test_bad_input_is_named(flags, message, run_dir, tmp_path, capsys):
    argv = [flag.format(missing=tmp_path / "nowhere", run=run_dir) for flag in flags]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["report", *argv])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_not_a_report_is_refused(tmp_path, capsys):
    (tmp_path / REPORT_FILE).write_text('{"rows": []}', encoding="utf-8")
    with pytest.raises(SystemExit):
        cli.main(["report", str(tmp_path)])
    assert "not a forgetting report (no 'sets' and 'compared')" in capsys.readouterr().err


def chromium_driver():
    """A headless Chromium through selenium, or a skip naming what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the test extra)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not (chromium and chromedriver):
        pytest.skip("Chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=chromedriver))


@pytest.fixture(scope="module")
def browser():
    driver = chromium_driver()
    yield driver
    driver.quit()


def cells(browser, selector: str) -> list[list[str]]:
    from selenium.webdriver.common.by import By

    rows = browser.find_elements(By.CSS_SELECTOR, f"{selector} tr")
    return [[cell.text for cell in row.find_elements(By.CSS_SELECTOR, "td")] for row in rows[1:]]


def test_page_in_chromium_holds_the_reports_numbers_and_examples(browser, run_dir, report):
    from selenium.webdriver.common.by import By

    browser.get((run_dir / PAGE_FILE).as_uri())
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
    assert errors == []
    for name, entry in report["sets"].items():
        rows = cells(browser, f'table.scores[data-set="{name}"]')
        assert [row[0] for row in rows] == ["BLEU", "chrF", "chrF++", "TER", "exact match"]
        chrf = rows[1]
        change = entry["changes"][RUN]["chrf"]
        assert chrf[1] == f"{entry['scores'][BASE]['chrf']:.2f}"
        assert chrf[2] == f"{change['score']:.2f}"
        assert chrf[3] == (f"{change['change']:+.2f} [{change['ci_low']:+.2f}, {change['ci_high']:+.2f}]"
                           + ("*" if change["significant"] else ""))
        assert chrf[4] == format_p_value(change["p_value"], report["bootstrap"]["resamples"])
        share = report["shares"]["plain"][name]["chrf"]["share"]
        assert chrf[-1] == ("n/a" if share is None else f"{100 * share:.0f} %")
    worse = cells(browser, 'table.examples[data-examples="worse"]')
    better = cells(browser, 'table.examples[data-examples="better"]')
    assert [row[0] for row in worse[:2]] == ["2", "4"] and [row[0] for row in better[:2]] == ["5", "3"]
    assert worse[0][1] == SOURCES["general"][1]  # the <script> is shown as text, not run
    assert worse[0][3:5] == [BASE_OUT["general"][1], RUN_OUT["general"][1]]
    first = 'table.examples[data-examples="worse"] tr:nth-child(2)'
    deleted = [mark.get_attribute("textContent") for mark in browser.find_elements(By.CSS_SELECTOR, f"{first} del")]
    assert deleted == ["seltenes ", " <b>"]  # "seltenes Wort <b>" -> "Wort"
    assert browser.find_elements(By.CSS_SELECTOR, f"{first} ins") == []
    assert browser.find_element(By.CSS_SELECTOR, "img").get_attribute("src").startswith("data:image/png;base64,")
    assert browser.execute_script("return document.images[0].naturalWidth") > 0


def test_page_opens_with_the_answer_and_defines_every_term_it_uses(browser, run_dir, report):
    from selenium.webdriver.common.by import By

    browser.get((run_dir / PAGE_FILE).as_uri())
    assert browser.find_element(By.CSS_SELECTOR, "h1 + p.verdict").text == verdict(report)
    defined = [term.text for term in browser.find_elements(By.CSS_SELECTOR, "dl.terms dt")]
    headers = {cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "table.scores th")}
    used = headers - {"score", BASE, RUN, "plain"} | {"*, significant", "n/a"}
    assert used <= set(defined) and {"change [95 % CI]", "p", "recovered vs plain", "gain kept vs plain"} <= used
    headline = browser.find_elements(By.CSS_SELECTOR, "table.scores tr.headline")
    assert [row.get_attribute("data-metric") for row in headline] == ["chrf", "chrf"]  # one per set
    struck = browser.find_element(By.CSS_SELECTOR, "table.examples del")
    assert "line-through" in struck.value_of_css_property("text-decoration")  # the note says "struck"


def test_long_unbreakable_outputs_wrap_at_1400_px(browser, tmp_path):
    from selenium.webdriver.common.by import By

    # A model that loops writes one "word" thousands of characters long; nothing may push the page sideways.
    loop = "fünfhundertzwanzigtausend" * 60
    sources = {"general": ["five hundred", loop], "years": ["nineteen eighty-four", "sixteen fifty-nine"]}
    references = {"general": ["fünfhundert", "fünfhundertzwanzigtausend"],
                  "years": ["neunzehnhundertvierundachtzig", "sechzehnhundertneunundfünfzig"]}
    translations = {BASE: {"general": ["fünfhundert", loop], "years": ["neunzehn", "sechzehn"]},
                    RUN: {"general": [loop, loop + "x"], "years": [loop, "sechzehnhundertneunundfünfzig"]}}
    report = build_report(references, translations, ["general"], resamples=100, sources=sources,
                          models={BASE: "base", RUN: "runs/" + loop}, command="hf-l2mt demo --output_dir " + loop)
    save_report(report, str(tmp_path / REPORT_FILE))
    cli.main(["report", str(tmp_path)])
    browser.set_window_size(1400, 900)
    browser.get((tmp_path / PAGE_FILE).as_uri())
    width = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1] <= 1400
    assert loop in browser.find_element(By.CSS_SELECTOR, "table.examples").text.replace("\n", "")


def test_plot_draws_the_headline_score_with_labels_that_never_overlap(report, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (the plots extra)")
    from hf_l2mt.apps.report import plot as forgetting_plot

    drawn = []

    def keep(figure, path):  # before plot_forgetting closes the figure, while it can still be laid out
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        drawn.append((figure, [text.get_window_extent(renderer) for text in figure.axes[0].get_legend().get_texts()]))

    monkeypatch.setattr(forgetting_plot, "save_figure", keep)
    same = json.loads(json.dumps(report))
    for entry in same["sets"].values():  # plain scores exactly as the base: two points at one place
        entry["scores"]["plain"] = entry["scores"][BASE]
    forgetting_plot.plot_forgetting(same, str(tmp_path / "plot.png"))
    ((figure, boxes),) = drawn
    (axes,) = figure.axes
    assert axes.get_xlabel() == "in-domain chrF (medical)" and axes.get_ylabel() == "general-domain chrF (general)"
    assert len(axes.texts) == 0  # no name next to a point, where two alike models would print over each other
    labels = axes.get_legend().get_texts()
    assert [label.get_text().split(":")[0] for label in labels] == [BASE, RUN, "plain"]
    assert not any(first.overlaps(second) for i, first in enumerate(boxes) for second in boxes[i + 1:])
