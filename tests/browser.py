#!/usr/bin/python3
"""A person's view of the deployed system: headless Chromium opens the vote
page through Traefik, clicks an option, and watches the result page (opened
before the vote) change without reloading. Screenshots go to the artefacts
folder. Uses Debian's chromium, chromium-driver and python3-selenium.

Usage: tests/browser.py HTTPS_PORT SPKI_SHA256_BASE64 ARTIFACTS_DIR
"""
import pathlib
import sys

from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from chromium import browser


def number(driver, element_id):
    text = driver.find_element(By.ID, element_id).text.strip()
    return int(text) if text.isdigit() else None


def total(driver):
    return number(driver, "total")


def explain(driver, out, expected):
    """What the result page showed when it did not change in time."""
    driver.save_screenshot(str(out / "result-timeout.png"))
    live = driver.find_element(By.ID, "live").text
    api = driver.execute_script(
        "var r = new XMLHttpRequest(); r.open('GET', 'api/results', false); r.send(); return r.responseText;"
    )
    sys.exit(
        f"browser: the result page shows total {total(driver)} ({live!r}), expected at least {expected}; "
        f"/api/results says {api}"
    )


def main(port, spki, artifacts):
    out = pathlib.Path(artifacts)
    out.mkdir(parents=True, exist_ok=True)
    url = lambda sub: f"https://{sub}.localhost:{port}/"
    driver = browser(spki, "412,915")
    wait = WebDriverWait(driver, 30)
    try:
        driver.get(url("result"))
        wait.until(lambda d: total(d) is not None)
        before, a_before = total(driver), number(driver, "votes-a")
        # Survives only if the page is never reloaded.
        driver.execute_script("window.swarmvoteMarker = 'still here';")
        driver.save_screenshot(str(out / "result-before.png"))
        result_tab = driver.current_window_handle

        driver.switch_to.new_window("tab")
        driver.get(url("vote"))
        driver.save_screenshot(str(out / "vote-before.png"))
        driver.find_element(By.CSS_SELECTOR, 'button[value="a"]').click()
        wait.until(lambda d: "Your vote" in d.page_source)
        driver.save_screenshot(str(out / "vote-after.png"))

        driver.switch_to.window(result_tab)
        # At least one more: the page was fetched from one replica and streams
        # from another, which may have counted a vote the first had not.
        try:
            wait.until(lambda d: (total(d) or 0) > before and (number(d, "votes-a") or 0) > a_before)
        except TimeoutException:
            explain(driver, out, before + 1)
        marker = driver.execute_script("return window.swarmvoteMarker;")
        driver.save_screenshot(str(out / "result-after.png"))
        if marker != "still here":
            sys.exit("browser: the result page was reloaded")
        print(f"browser: voted; the open result page went from {before} to {total(driver)} without reloading")
    finally:
        driver.quit()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
