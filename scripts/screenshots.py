"""Write up-to-date screenshots of the dashboard into docs/images/ by driving a real browser.

    python scripts/screenshots.py [--out docs/images] [--simulator lexical] [--skip-explore]

Starts `streamlit run app.py` on a free 127.0.0.1 port, opens it in headless
Chromium and, as a user would: scores the bundled example on the Score page
(the results, then the ranking chart against the chance level), checks the
bundled feature's claims on the Spot-check page, and opens an SAE latent's
page in Explore (loads the subject model and indexes part of the bundled corpus:
minutes on a small CPU). Each picture is the browser window scrolled to the part it shows.
Needs what `tests/test_browser.py` needs (chromium, chromium-driver, selenium).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from support.streamlit_browser import REPO, Page, chromium, missing_requirements, streamlit_server  # noqa: E402

logger = logging.getLogger("screenshots")

WIDTH, HEIGHT = 1400, 1500


def scroll_to(page: Page, xpath: str, margin: int = 20) -> None:
    """Scroll the page so that the element at `xpath` sits `margin` pixels below the top of the window.

    Streamlit scrolls its main container, not the window, so the container is the one moved.
    """
    element = page.find_xpath(xpath)
    page.driver.execute_script(
        "const element = arguments[0];"
        "element.scrollIntoView({block: 'start'});"
        "let box = element.parentElement;"
        "while (box && !(box.scrollHeight > box.clientHeight && getComputedStyle(box).overflowY !== 'visible')) {"
        "  box = box.parentElement;"
        "}"
        "(box || document.scrollingElement).scrollBy(0, -arguments[1]);",
        element,
        margin,
    )
    page.idle()


def score_results(page: Page, simulator: str, out: Path) -> Path:
    page.open(title="Score explanations")
    page.select("Simulator", simulator)
    page.click_xpath("//button[@data-testid='stBaseButton-primaryFormSubmit']")
    page.find_xpath("//h3[contains(., 'Ranking')]")
    scroll_to(page, "//h2[contains(., 'Results')]")
    path = out / "score_results.png"
    page.screenshot(path, full_page=False)
    return path


def score_against_chance(page: Page, out: Path) -> Path:
    """The ranking chart of the scores just made, with the chance level (a cheap simulator scores it by default)."""
    scroll_to(page, "//div[@data-testid='stCaptionContainer'][contains(., 'Chance level')]")
    path = out / "score_chance.png"
    page.screenshot(path, full_page=False)
    return path


def spot_check(page: Page, out: Path) -> Path:
    """The bundled feature's claims as derived from their details (offline: no judge is needed for this view)."""
    page.open("Spot_check", title="Spot-check")
    page.find_xpath("//h2[contains(., 'derived from their details')]")
    scroll_to(page, "//h2[contains(., 'derived from their details')]")
    path = out / "spot_check.png"
    page.screenshot(path, full_page=False)
    return path


def explore(url: str, out: Path) -> Path:
    """A latent's page in Explore ("My favorite color is red." and the latent that fires on " red"),
    driven by the Explore browser test's own steps (`support.explore_browser`)."""
    from support.explore_browser import explore_a_latent

    path = out / "explore-latent.png"
    explore_a_latent(url, path, text="My favorite color is red.", latent=1347, window=(1400, 2300))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--simulator", default="lexical", help="simulator spec to score with (default: lexical)")
    parser.add_argument("--skip-explore", action="store_true", help="leave out the Explore page (loads a model)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    reason = missing_requirements()
    if reason:
        logger.error("cannot drive a browser: %s", reason)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch, streamlit_server(Path(scratch) / "streamlit.log") as url:
        driver = chromium(WIDTH, HEIGHT)
        try:
            page = Page(driver, url)
            shots = [score_results(page, args.simulator, args.out), score_against_chance(page, args.out)]
            shots.append(spot_check(page, args.out))
        finally:
            driver.quit()
        if not args.skip_explore:
            shots.append(explore(url, args.out))
    for path in shots:
        logger.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
