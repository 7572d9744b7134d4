"""One real-browser check: the Score page in headless Chromium against `streamlit run app.py`.

Needs Debian's `chromium` and `chromium-driver` and the `selenium` package;
skipped when they are missing, except under CI=true where that is a failure.
The screenshot goes to $ARTIFACTS_DIR (default tmp/artifacts in the repo).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1500,3200",
)
SERVER_START_SECONDS = 90
PAGE_SECONDS = 60


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser test cannot run under CI: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"streamlit exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(
        f"streamlit did not answer within {SERVER_START_SECONDS} s:\n{log.read_text()[-3000:]}"
    )


@pytest.fixture
def streamlit_url(tmp_path: Path) -> Iterator[str]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        _missing(f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "streamlit.log"
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
            start_new_session=True,
        )
        try:
            _wait_healthy(url, process, log)
            yield url
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=15)


def _artifacts_dir() -> Path:
    directory = Path(os.environ.get("ARTIFACTS_DIR", REPO / "tmp" / "artifacts"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_score_bundled_example_in_chromium(streamlit_url: str) -> None:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.support import expected_conditions as expected
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        _missing("needs the selenium package (pip install selenium)")

    options = Options()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    screenshot = _artifacts_dir() / "score_page.png"
    try:
        wait = WebDriverWait(driver, PAGE_SECONDS)

        def wait_idle() -> None:
            time.sleep(0.5)  # a rerun starts shortly after the event that caused it
            wait.until(
                expected.presence_of_element_located(
                    (By.CSS_SELECTOR, "[data-testid='stApp'][data-test-script-state='notRunning']")
                )
            )

        driver.get(streamlit_url)
        title = "//h1[contains(., 'Score explanations')]"
        wait.until(expected.presence_of_element_located((By.XPATH, title)))
        wait_idle()

        # Pick the deterministic `fake` simulator (never the local model in a test).
        simulator_box = "//div[@data-testid='stSelectbox'][.//label[contains(., 'Simulator')]]"
        simulator = wait.until(expected.element_to_be_clickable((By.XPATH, simulator_box + "//input")))
        simulator.click()
        simulator.send_keys("fake")
        simulator.send_keys(Keys.ENTER)
        wait.until(
            expected.text_to_be_present_in_element_attribute(
                (By.XPATH, simulator_box + "//input"), "value", "fake"
            )
        )
        wait_idle()

        submit = "[data-testid='stBaseButton-primaryFormSubmit']"
        score = wait.until(expected.element_to_be_clickable((By.CSS_SELECTOR, submit)))
        score.click()
        wait_idle()

        wait.until(expected.visibility_of_element_located((By.XPATH, "//h3[contains(., 'Ranking')]")))
        ranking = wait.until(
            expected.visibility_of_element_located((By.CSS_SELECTOR, "[data-testid='stDataFrame']"))
        )
        heatmap = wait.until(expected.visibility_of_element_located((By.CSS_SELECTOR, ".cmpgrid .tok")))
        assert ranking.is_displayed()
        assert heatmap.is_displayed()
        tokens = driver.find_elements(By.CSS_SELECTOR, ".cmpgrid .tok")
        assert any("fox" in token.text for token in tokens)
        hover = next(token.get_attribute("title") for token in tokens if "fox" in token.text)
        assert "value" in hover and ("real" in hover or "raw" in hover)
        assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid='stException']")
        time.sleep(1.0)  # let plotly finish drawing before the picture
    finally:
        driver.save_screenshot(str(screenshot))
        driver.quit()
    assert screenshot.stat().st_size > 10_000
