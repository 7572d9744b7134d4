"""The Explore page driven in headless Chromium: open a latent's page, search and narrow the units.

Shared by `tests/test_explore_browser.py` (which checks what these steps see) and
`scripts/screenshots.py` (which keeps the picture of a latent's page). Needs what
`support.streamlit_browser` needs, and the packaged Gemma 3 270M on the server's side.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from support.streamlit_browser import Page, chromium
from support.streamlit_browser import streamlit_server as shared_streamlit_server

MODEL_SECONDS = 600  # a first run converts the packaged model (minutes on 2 busy cores)


@contextmanager
def streamlit_server(log: Path, subjects_directory: Path | None = None) -> Iterator[str]:
    """The dashboard's server (`support.streamlit_browser`), its indexes under `subjects_directory` when given."""
    env = {"SCORING_SUBJECT_DIR": str(subjects_directory)} if subjects_directory is not None else None
    with shared_streamlit_server(log, env) as url:
        yield url


@contextmanager
def browser(window: tuple[int, int]) -> Iterator[Any]:
    """The shared headless Chromium (`support.streamlit_browser.chromium`), quit afterwards."""
    driver = chromium(*window)
    try:
        yield driver
    finally:
        driver.quit()


class ExplorePage(Page):
    """The Explore page in one browser session, waiting as long as the model may take (a first search indexes)."""

    def __init__(self, driver: Any, url: str) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        super().__init__(driver, url)
        self.wait = WebDriverWait(driver, MODEL_SECONDS)
        self.open("Explore", "Explore neurons")
        self.labelled("Search")

    def present(self, xpath: str) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as expected

        return self.wait.until(expected.presence_of_element_located((By.XPATH, xpath)))

    def clickable(self, xpath: str) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as expected

        return self.wait.until(expected.element_to_be_clickable((By.XPATH, xpath)))

    def labelled(self, label: str) -> Any:
        """The button labelled `label`, once clickable."""
        return self.clickable(f"//button[.//p[text()={label!r}]]")

    def count(self, xpath: str) -> int:
        from selenium.webdriver.common.by import By

        return len(self.driver.find_elements(By.XPATH, xpath))

    def errors(self) -> int:
        from selenium.webdriver.common.by import By

        return len(self.driver.find_elements(By.CSS_SELECTOR, "[data-testid='stException']"))

    def search(self, text: str) -> None:
        """Type `text` into the search box and press Search (the first search indexes the corpus)."""
        from selenium.webdriver.common.keys import Keys

        text_box = self.present("//div[@data-testid='stTextArea'][.//label[normalize-space(.)='Text']]//textarea")
        text_box.send_keys(Keys.CONTROL, "a")
        text_box.send_keys(text)
        self.labelled("Search").click()
        self.idle()
        self.present("//div[contains(@class, 'js-plotly-plot')]")


PICK_BOX = "//div[@data-testid='stSelectbox'][.//label[contains(., 'Open a unit')]]//input"
UNITS_BOX = "//div[@data-testid='stMultiSelect'][.//label[contains(., 'Units')]]"


def explore_a_latent(
    url: str,
    screenshot: Path,
    *,
    text: str = "The capital of France is Paris, and its currency is the euro.",
    pick: str = "latent",
    latent: int | None = None,
    window: tuple[int, int] = (1500, 3400),
) -> dict[str, str]:
    """Drive the Explore page: search `text`, open the first hit whose label contains `pick` (or latent
    number `latent`), index, test, picture."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    seen: dict[str, str] = {}
    with browser(window) as driver:
        try:
            page = ExplorePage(driver, url)
            page.search(text)
            if latent is None:
                picker = page.clickable(PICK_BOX)
                picker.click()
                picker.send_keys(pick, Keys.ENTER)
                page.idle()
                seen["opened"] = driver.find_element(By.XPATH, PICK_BOX).get_attribute("value") or ""
                page.labelled("Open").click()
            else:
                number = page.clickable(
                    "//div[@data-testid='stNumberInput'][.//label[starts-with(., 'Number')]]//input"
                )
                number.send_keys(Keys.CONTROL, "a")
                number.send_keys(str(latent), Keys.ENTER)
                seen["opened"] = f"latent #{latent}"
            page.idle()
            index_button = '//button[.//p[text()="Index the corpus for the SAE\'s latents"]]'
            page.present(f"{index_button} | //button[.//p[text()='Score explanations for this latent']]")
            if page.count(index_button):  # not yet indexed with this model, SAE and corpus
                driver.find_element(By.XPATH, index_button).click()
            page.labelled("Score explanations for this latent")
            page.idle()
            heading = driver.find_element(By.XPATH, "//h3[starts-with(., 'Latent #')]")
            seen["heading"] = heading.text
            seen["density"] = driver.find_element(
                By.XPATH, "//div[@data-testid='stMetric'][contains(., 'Density')]"
            ).text
            # each window's label is the first line of its own box (scoring.viz.windows_html), not a caption
            labels = "//div[contains(@class, 'explore-window')]/div[@class='label'][contains(., '· window ')]"
            seen["windows"] = str(page.count(labels))
            seen["twins"] = driver.find_element(By.XPATH, "//h4[contains(., 'Twins')]").text
            seen["errors"] = str(page.errors())
            page.labelled("Test").click()
            page.idle()
            seen["tested"] = str(page.count('//p[contains(., "the top window\'s max")]'))
            driver.execute_script("arguments[0].scrollIntoView();", heading)
            time.sleep(1.0)  # let plotly finish drawing before the picture
        finally:
            driver.save_screenshot(str(screenshot))
    return seen


def search_and_narrow(url: str, screenshot: Path) -> dict[str, Any]:
    """Search "My favorite color is red." (read the first five hits); search "country", pick a neuron among its
    hits, remove the MLP neurons from Units and search "country" and "population": the pick left over names a
    unit that the new searches no longer list (issue 25, item 1: that crashed the page on every search until a
    reload)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    seen: dict[str, Any] = {}
    with browser((1500, 2000)) as driver:
        try:
            page = ExplorePage(driver, url)
            page.search("My favorite color is red.")
            picker = page.clickable(PICK_BOX)
            picker.click()
            options = "//*[@role='listbox']//*[@role='option']"
            page.present(options)
            seen["top5"] = [option.text for option in driver.find_elements(By.XPATH, options)[:5]]
            picker.send_keys(Keys.ESCAPE)
            page.search("country")  # the steps: a neuron of "country" is picked, then neurons removed
            picker = page.clickable(PICK_BOX)
            picker.click()
            picker.send_keys("neuron", Keys.ENTER)
            page.idle()
            seen["picked"] = driver.find_element(By.XPATH, PICK_BOX).get_attribute("value") or ""
            units = page.clickable(f"{UNITS_BOX}//input")
            units.click()
            units.send_keys(Keys.BACKSPACE, Keys.ESCAPE)  # removes the last chip, "MLP neurons"
            seen["units"] = [
                chip.get_attribute("title") for chip in driver.find_elements(By.XPATH, f"{UNITS_BOX}//span[@title]")
            ]
            for text in ("country", "population"):
                page.search(text)
                seen[f"errors after {text}"] = page.errors()
            seen["picked after"] = driver.find_element(By.XPATH, PICK_BOX).get_attribute("value") or ""
        finally:
            driver.save_screenshot(str(screenshot))
    return seen
