"""Debian's headless Chromium for the browser tests, resolving *.localhost to
127.0.0.1 and trusting exactly the deployment's certificate key."""
from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def browser(spki, window_size):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        f"--window-size={window_size}",
        f"--ignore-certificate-errors-spki-list={spki}",
        "--host-resolver-rules=MAP *.localhost 127.0.0.1",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
