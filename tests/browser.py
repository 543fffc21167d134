#!/usr/bin/python3
"""A person's view of the deployed system: headless Chromium opens the vote
page through Traefik, clicks an option, and watches the result page (opened
before the vote) change without reloading. Screenshots go to the artefacts
folder. Uses Debian's chromium, chromium-driver and python3-selenium.

Usage: tests/browser.py HTTPS_PORT SPKI_SHA256_BASE64 ARTIFACTS_DIR
"""
import pathlib
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def browser(spki):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=412,915",  # a phone
        # Trust exactly the deployment's certificate key, nothing else.
        f"--ignore-certificate-errors-spki-list={spki}",
        "--host-resolver-rules=MAP *.localhost 127.0.0.1",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def total(driver):
    text = driver.find_element(By.ID, "total").text.strip()
    return int(text) if text.isdigit() else None


def main(port, spki, artifacts):
    out = pathlib.Path(artifacts)
    out.mkdir(parents=True, exist_ok=True)
    url = lambda sub: f"https://{sub}.localhost:{port}/"
    driver = browser(spki)
    wait = WebDriverWait(driver, 30)
    try:
        driver.get(url("result"))
        wait.until(lambda d: total(d) is not None)
        before = total(driver)
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
        wait.until(lambda d: total(d) == before + 1)
        marker = driver.execute_script("return window.swarmvoteMarker;")
        driver.save_screenshot(str(out / "result-after.png"))
        if marker != "still here":
            sys.exit("browser: the result page was reloaded")
        print(f"browser: voted; the open result page went from {before} to {before + 1} without reloading")
    finally:
        driver.quit()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
