#!/usr/bin/python3
"""An editor's view of the WordPress site: headless Chromium logs in through
Traefik as the admin, writes a post in the block editor, publishes it and
opens it. Screenshots go to the artefacts folder. Prints the post's URL.

Usage: tests/wp-browser.py HTTPS_PORT SPKI_SHA256_BASE64 USER PASSWORD_FILE TITLE ARTIFACTS_DIR
"""
import pathlib
import sys
import time

from selenium.common.exceptions import ElementClickInterceptedException, TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from chromium import browser

MODAL = ".components-modal__screen-overlay"


def close_modals(driver):
    """Waits up to 5 s for a modal over the editor to go (one fading out);
    one still there (the welcome guide, shown again once the user's saved
    preferences load) is closed with Escape, as a user would."""
    for _ in range(3):
        try:
            WebDriverWait(driver, 5).until(lambda d: not d.find_elements(By.CSS_SELECTOR, MODAL))
            return
        except TimeoutException:
            ActionChains(driver).send_keys(Keys.ESCAPE).perform()
    WebDriverWait(driver, 5).until(lambda d: not d.find_elements(By.CSS_SELECTOR, MODAL))


def click(driver, wait, css):
    """Clicks css once it is clickable and no modal covers it."""
    for attempt in range(3):
        close_modals(driver)
        element = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, css)))
        try:
            element.click()
            return
        except ElementClickInterceptedException:
            if attempt == 2:
                raise
            time.sleep(0.5)


def main(port, spki, user, password_file, title, artifacts):
    out = pathlib.Path(artifacts)
    out.mkdir(parents=True, exist_ok=True)
    site = f"https://wp.localhost:{port}"
    password = pathlib.Path(password_file).read_text().strip()
    driver = browser(spki, "1280,900")
    wait = WebDriverWait(driver, 60)
    step = "opening the login page"
    try:
        driver.get(f"{site}/wp-login.php")
        wait.until(EC.presence_of_element_located((By.ID, "user_login"))).send_keys(user)
        driver.find_element(By.ID, "user_pass").send_keys(password)
        driver.save_screenshot(str(out / "wp-login.png"))
        driver.find_element(By.ID, "wp-submit").click()
        step = "waiting for the dashboard after logging in"
        wait.until(EC.presence_of_element_located((By.ID, "wpadminbar")))
        driver.save_screenshot(str(out / "wp-dashboard.png"))

        step = "opening the block editor"
        driver.get(f"{site}/wp-admin/post-new.php")
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".editor-post-title__input")))
        # The first visit shows a welcome guide over the editor, a moment
        # after it loads: turn it off the way its "Close" button does.
        step = "closing the editor's welcome guide"
        wait.until(lambda d: d.execute_script(
            "return !!(window.wp && wp.data && wp.data.select('core/edit-post'));"))
        driver.execute_script(
            "var ep = wp.data.select('core/edit-post');"
            "if (ep.isFeatureActive('welcomeGuide')) wp.data.dispatch('core/edit-post').toggleFeature('welcomeGuide');")
        wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".edit-post-welcome-guide"))
        step = "typing the title"
        close_modals(driver)
        title_field = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, ".editor-post-title__input")))
        title_field.click()
        title_field.send_keys(title)
        step = "publishing"
        click(driver, wait, ".editor-post-publish-panel__toggle")
        click(driver, wait, ".editor-post-publish-panel .editor-post-publish-button")
        step = "waiting for 'is now live'"
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".post-publish-panel__postpublish-header")))
        driver.save_screenshot(str(out / "wp-published.png"))
        link = driver.find_element(By.CSS_SELECTOR, ".post-publish-panel__postpublish-post-address input").get_attribute("value")

        step = f"opening the published post {link}"
        driver.get(link)
        wait.until(lambda d: title in d.title)
        driver.save_screenshot(str(out / "wp-post.png"))
        print(link)
    except TimeoutException:
        driver.save_screenshot(str(out / "wp-timeout.png"))
        sys.exit(f"wp-browser: timed out {step} (screenshot wp-timeout.png; page {driver.current_url})")
    except ElementClickInterceptedException as e:
        driver.save_screenshot(str(out / "wp-intercepted.png"))
        sys.exit(f"wp-browser: {step}: something covered the button (screenshot wp-intercepted.png): {e.msg.splitlines()[0]}")
    finally:
        driver.quit()


if __name__ == "__main__":
    if len(sys.argv) != 7:
        sys.exit(__doc__)
    main(*sys.argv[1:])
