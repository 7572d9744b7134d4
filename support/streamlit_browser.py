"""Drive the real dashboard in headless Chromium: start `streamlit run app.py`, open pages, fill widgets.

Used by `tests/test_browser.py`, `tests/test_explore_browser.py` and `scripts/screenshots.py`. Needs Debian's
`chromium` and `chromium-driver` and the `selenium` package.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from support.scoring_server import REPO, free_port

CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver")
SERVER_START_SECONDS = 90
PAGE_SECONDS = 60


def missing_requirements() -> str | None:
    """Why a browser cannot be driven here, or None when it can."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        return f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "needs the selenium package (pip install selenium)"
    return None


@contextmanager
def streamlit_server(log: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """`streamlit run app.py` on a free 127.0.0.1 port; yields its URL once healthy, stops it afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.headless", "true",
        "--server.port", str(port),
        "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
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


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"streamlit did not answer within {SERVER_START_SECONDS} s:\n{log.read_text()[-3000:]}")


def chromium(width: int = 1500, height: int = 2000) -> Any:
    """A headless Chromium WebDriver (the caller quits it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


class Page:
    """A Streamlit page in the browser, with the few gestures the tests and screenshots need."""

    def __init__(self, driver: Any, url: str) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.url = url
        self.wait = WebDriverWait(driver, PAGE_SECONDS)

    def open(self, path: str = "", title: str | None = None) -> Page:
        self.driver.get(f"{self.url}/{path}")
        if title:
            self.find_xpath(f"//h1[contains(., '{title}')]")
        self.idle()
        return self

    def idle(self) -> None:
        """Wait until the script run that the last gesture caused has finished."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as expected

        time.sleep(0.6)  # a rerun starts shortly after the event that caused it
        self.wait.until(
            expected.presence_of_element_located(
                (By.CSS_SELECTOR, "[data-testid='stApp'][data-test-script-state='notRunning']")
            )
        )

    def find_xpath(self, xpath: str) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as expected

        return self.wait.until(expected.visibility_of_element_located((By.XPATH, xpath)))

    def all_css(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def texts(self, selector: str) -> list[str]:
        return [element.text for element in self.all_css(selector)]

    def click_xpath(self, xpath: str) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as expected

        element = self.wait.until(expected.element_to_be_clickable((By.XPATH, xpath)))
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        element.click()
        self.idle()

    def button(self, label: str) -> None:
        self.click_xpath(f"//button[.//p[normalize-space()='{label}'] or normalize-space()='{label}']")

    def radio(self, label: str) -> None:
        self.click_xpath(f"//div[@role='radiogroup']//label[normalize-space()='{label}']")

    def type_into(self, label: str, text: str, *, kind: str = "stTextInput") -> None:
        """Replace the text of the widget labelled `label` (kind: stTextInput, stTextArea, stNumberInput).

        The text is committed as a user would: Enter (Ctrl+Enter in a text area).
        """
        from selenium.webdriver.common.keys import Keys

        tag = "textarea" if kind == "stTextArea" else "input"
        field = self.find_xpath(f"//div[@data-testid='{kind}'][.//label[contains(., '{label}')]]//{tag}")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", field)
        field.click()
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(Keys.DELETE)
        if len(text) > 2000:
            # Typing tens of thousands of characters key by key takes minutes: paste them in one go instead.
            self.driver.execute_script(
                "const box = arguments[0];"
                "const setter = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(box), 'value').set;"
                "setter.call(box, arguments[1]);"
                "box.dispatchEvent(new Event('input', {bubbles: true}));",
                field,
                text,
            )
        else:
            field.send_keys(text)
        if kind == "stTextArea":
            field.send_keys(Keys.CONTROL, Keys.ENTER)
        else:
            field.send_keys(Keys.ENTER)
        self.idle()

    def select(self, label: str, option: str) -> None:
        """Pick the option starting with `option` in the selectbox labelled `label`, by typing it."""
        from selenium.webdriver.common.keys import Keys

        box = f"//div[@data-testid='stSelectbox'][.//label[contains(., '{label}')]]"
        field = self.find_xpath(box + "//input")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", field)
        field.click()
        field.send_keys(option)
        field.send_keys(Keys.ENTER)
        chosen = box + "//input"
        self.wait.until(lambda driver: option in (driver.find_element("xpath", chosen).get_attribute("value") or ""))
        self.idle()

    def add_simulator_spec(self, spec: str) -> None:
        """Type a spec (e.g. `fake`) into the sidebar's "Other simulator spec", so the simulator list offers it."""
        self.type_into("Other simulator spec", spec)

    def no_exception(self) -> bool:
        return not self.all_css("[data-testid='stException']")

    def screenshot(self, path: Path, *, full_page: bool = True) -> None:
        """A PNG of the page; with `full_page` the window is stretched to the page's height first."""
        if full_page:
            height = self.driver.execute_script(
                "const main = document.querySelector('[data-testid=\"stMain\"]') || document.body;"
                "return Math.max(main.scrollHeight, document.body.scrollHeight);"
            )
            width = self.driver.get_window_size()["width"]
            self.driver.set_window_size(width, min(int(height) + 120, 16000))
            time.sleep(1.5)  # let plotly redraw at the new size
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
