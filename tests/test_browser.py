"""Real-browser checks: the dashboard in headless Chromium against `streamlit run app.py`.

Needs Debian's `chromium` and `chromium-driver` and the `selenium` package;
skipped when they are missing, except under CI=true where that is a failure.
Screenshots go to $ARTIFACTS_DIR (default tmp/artifacts in the repo). The
simulator is always `fake` (typed into the sidebar, as it is not offered).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.streamlit_browser import REPO, Page, chromium, missing_requirements, streamlit_server

pytestmark = pytest.mark.browser


def _artifacts_dir() -> Path:
    directory = Path(os.environ.get("ARTIFACTS_DIR", REPO / "tmp" / "artifacts"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def streamlit_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    reason = missing_requirements()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser test cannot run under CI: {reason}")
        pytest.skip(reason)
    with streamlit_server(tmp_path_factory.mktemp("streamlit") / "streamlit.log") as url:
        yield url


@pytest.fixture
def page(streamlit_url: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    driver = chromium()
    browser_page = Page(driver, streamlit_url)
    try:
        browser_page.open(title="Score explanations")
        yield browser_page
    finally:
        browser_page.screenshot(_artifacts_dir() / f"{request.node.name}.png", full_page=False)
        driver.quit()


def score_pasted(page: Page, records: list[dict[str, object]], explanations: str) -> None:
    page.radio("Paste")
    page.type_into("Activation records", json.dumps(records), kind="stTextArea")
    page.add_simulator_spec("fake")
    page.select("Simulator", "fake")
    page.type_into("Candidate explanations", explanations, kind="stTextArea")
    page.click_xpath("//button[@data-testid='stBaseButton-primaryFormSubmit']")
    page.find_xpath("//h3[contains(., 'Ranking')]")


def score_the_example_with_fake(page: Page) -> None:
    page.add_simulator_spec("fake")
    page.select("Simulator", "fake")
    page.click_xpath("//button[@data-testid='stBaseButton-primaryFormSubmit']")
    page.find_xpath("//h3[contains(., 'Ranking')]")


def test_score_bundled_example_in_chromium(page: Page) -> None:
    links = page.texts("[data-testid='stSidebar'] [data-testid='stPageLink']")
    for name in ("Score", "Spot-check", "Benchmark", "Explore"):
        assert any(link.strip().endswith(name) for link in links), (name, links)
    assert not any(link.strip().endswith("app") for link in links)  # the entry script is not listed as "app"
    page.add_simulator_spec("fake")
    page.select("Simulator", "fake")
    page.click_xpath("//button[@data-testid='stBaseButton-primaryFormSubmit']")
    page.find_xpath("//h3[contains(., 'Ranking')]")
    tokens = page.all_css(".cmpgrid .tok")
    assert any("fox" in token.text for token in tokens)
    hover = next(token.get_attribute("title") for token in tokens if "fox" in token.text)
    assert "value" in hover and ("real" in hover or "raw" in hover)
    assert page.no_exception()


def test_new_records_mark_the_results_stale(page: Page) -> None:
    score_pasted(page, [{"tokens": ["the", " fox"], "values": [0, 8]}], "fox")
    assert not [text for text in page.texts("[data-testid='stAlert']") if "Stale results" in text]
    page.type_into("Activation records", json.dumps([{"tokens": ["the", " cat"], "values": [0, 8]}]), kind="stTextArea")
    page.find_xpath("//h2[contains(., 'Results (stale)')]")
    warnings = [text for text in page.texts("[data-testid='stAlert']") if "Stale results" in text]
    assert warnings and "the activations changed" in warnings[0]
    page.click_xpath("//button[@data-testid='stBaseButton-primaryFormSubmit']")
    page.find_xpath("//h2[normalize-space()='3 · Results']")
    assert not [text for text in page.texts("[data-testid='stAlert']") if "Stale results" in text]
    assert page.no_exception()


def test_a_missed_firing_is_marked_in_the_heatmaps(page: Page) -> None:
    records = [
        {"tokens": ["the", " fox"], "values": [0, 8]},
        {"tokens": [" spotted", " leopard"], "values": [0, 9]},
        {"tokens": ["a", " b"], "values": [0, 0]},
    ]
    score_pasted(page, records, "leopard")
    missed = page.all_css(".cmpgrid .head.missed")
    assert len(missed) == 1 and "✗ missed" in missed[0].text
    assert "missed firing" in missed[0].get_attribute("title")
    # the per-sequence chart writes the mark into its cell (an SVG text), apart from the silent sequence's "–"
    chart_texts = [element.text for element in page.all_css(".js-plotly-plot text")]
    assert "✗ missed" in chart_texts and "–" in chart_texts
    assert page.no_exception()


def test_a_long_sequence_asks_for_the_in_page_limit_and_then_scrolls(page: Page) -> None:
    positions = range(5000)
    long_record = {"tokens": [f" w{position}" for position in positions], "values": [p % 7 for p in positions]}
    short = [{"tokens": ["x", f" y{index}"], "values": [0, index]} for index in range(12)]
    page.radio("Paste")
    page.type_into("Activation records", json.dumps([long_record, *short]), kind="stTextArea")
    error = page.find_xpath("//div[@data-testid='stAlert'][contains(., 'Max tokens per sequence')]")
    assert "5,000 tokens" in error.text and "Input limits" in error.text
    page.click_xpath("//details[.//p[normalize-space()='Input limits']]/summary")
    page.type_into("Max tokens per sequence", "6000", kind="stNumberInput")
    page.find_xpath("//div[@data-testid='stAlert'][contains(., '13 sequences')]")
    page.add_simulator_spec("fake")
    page.select("Simulator", "fake")
    page.type_into("Candidate explanations", "w6", kind="stTextArea")
    page.click_xpath("//button[@data-testid='stBaseButton-primaryFormSubmit']")
    page.find_xpath("//h3[contains(., 'Ranking')]")
    boxes = page.all_css(".cmpgrid .tokviz.scroll")
    heights = [page.driver.execute_script("return [arguments[0].clientHeight, arguments[0].scrollHeight];", box)
               for box in boxes]
    tallest = max(heights, key=lambda pair: pair[1])
    assert tallest[1] > 2000 and tallest[0] < 300  # 5,000 tokens scroll inside a box a few lines tall
    assert len(page.all_css(".cmpgrid")) == 10  # the ten strongest sequences first
    page.button("Show 3 more sequences")
    assert len(page.all_css(".cmpgrid")) == 13
    assert page.no_exception()


def test_spot_check_shows_where_the_explanation_fails(page: Page) -> None:
    page.open("Spot_check", title="Spot-check")
    page.find_xpath("//h2[contains(., 'derived from their details')]")
    alerts = page.texts("[data-testid='stAlert']")
    assert any("2 of 7 claims are refuted" in text for text in alerts), alerts
    # the refuted claims open by themselves: the stored judgments drawn as tokens, wrong ones marked
    wrong = page.all_css(".cmpseq[data-outcome='wrong']")
    assert wrong and any("expected yes" in element.text and "judged no" in element.text for element in wrong)
    assert page.all_css(".cmpseq[data-outcome='failed (counted as no)']")
    assert page.all_css(".tokviz .tok")
    page.add_simulator_spec("fake")
    page.select("Judge", "fake")
    page.click_xpath("//button[@data-testid='stBaseButton-primaryFormSubmit']")
    page.find_xpath("//h2[contains(., 'derived and re-scored')]")
    alerts = page.texts("[data-testid='stAlert']")
    assert any("another judge model or prompt" in text for text in alerts), alerts
    # the tabs of the refuted claims' open evidence (those of closed expanders are in the page, hidden)
    tabs = [tab for tab in page.all_css("[role='tab']") if tab.is_displayed() and tab.text == "Re-score"]
    assert tabs
    tabs[0].click()
    page.idle()
    summaries = [element.text for element in page.all_css("[role='tabpanel'] p") if element.is_displayed()]
    assert any("examples judged wrong or failed" in text for text in summaries), summaries
def test_the_compare_chips_follow_a_new_set_of_explanations(page: Page) -> None:
    score_the_example_with_fake(page)
    chips = "//div[@data-testid='stMultiSelect'][.//label[contains(., 'Explanations to compare')]]//span[@title]"
    before = [chip.get_attribute("title") for chip in page.driver.find_elements("xpath", chips)]
    assert len(before) == 3
    page.type_into("Candidate explanations", "fox\nleopard\ncheetah\nsprints", kind="stTextArea")
    page.click_xpath("//button[@data-testid='stBaseButton-primaryFormSubmit']")
    page.find_xpath("//h2[normalize-space()='3 · Results']")
    after = [chip.get_attribute("title") for chip in page.driver.find_elements("xpath", chips)]
    assert len(after) == 3 and set(after) <= {"fox", "leopard", "cheetah", "sprints"}, after
    heads = page.texts(".cmpgrid .head")
    assert not any(name in head for name in before for head in heads)
    assert page.no_exception()


def test_first_use_preparation_shows_its_own_progress_bar(page: Page) -> None:
    page.add_simulator_spec("fake:prepare")
    page.select("Simulator", "fake:prepare")
    note = page.find_xpath("//div[@data-testid='stAlert'][contains(., 'Before its first score')]")
    assert "prepares a pretend model" in note.text
    submit = page.find_xpath("//button[@data-testid='stBaseButton-primaryFormSubmit']")
    page.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", submit)
    submit.click()
    bar = page.find_xpath("//div[@data-testid='stProgress'][contains(., 'Preparing fake:prepare')]")
    shown = bar.text  # read once: the bar changes, then goes, as the preparation advances
    assert "preparing the pretend model" in shown or "for first use" in shown or not shown
    page.find_xpath("//h3[contains(., 'Ranking')]")
    page.idle()
    assert not [text for text in page.texts("[data-testid='stAlert']") if "Before its first score" in text]
    assert page.no_exception()


def test_the_ranking_chart_shows_the_chance_level(page: Page) -> None:
    score_the_example_with_fake(page)
    page.find_xpath("//div[@data-testid='stCaptionContainer'][contains(., 'Chance level')]")
    chart_texts = [element.text for element in page.all_css(".js-plotly-plot text")]
    assert any(text.startswith("chance, 95th percentile") for text in chart_texts), chart_texts
    assert any(text.startswith("chance (") and "unrelated" in text for text in chart_texts)
    assert page.no_exception()
