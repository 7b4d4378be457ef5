"""The web console in a real browser (issue 14 point 5): Debian's headless chromium, driven by Selenium.

The daemon is the real one (``[http] port = 0``, one service); tokens are made with
``nua-orchestrator keys token``, as a new user would. Skipped, saying why, where
chromium and chromium-driver are not installed (``.ci/run`` installs them).
With ``NUA_CONSOLE_SCREENSHOT=PATH`` the first test also saves the console as PNG
there (the README's picture is made so).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from daemon_helpers import DaemonEnv

selenium = pytest.importorskip("selenium", reason="the browser tests need selenium (pip install '.[test]')")
from selenium import webdriver  # noqa: E402 - after the skip
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(DRIVER).exists()),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)
USER = {"user": "root"} if os.geteuid() == 0 else {}
SERVICE = "sleeper"
WAIT_S = 30.0


@pytest.fixture
def console(daemon: DaemonEnv) -> Iterator[str]:
    """The running daemon's console URL; its service killed by pid afterwards."""
    daemon.write_config(
        http={"port": 0},
        services={SERVICE: {"command": ["sleep", "100000"], "start_s": 0.0, "backoff_s": 0.1, **USER}},
    )
    daemon.start()
    record = json.loads((daemon.run_dir / "nua.runtime.json").read_text(encoding="utf-8"))
    try:
        yield str(record["http"])
    finally:
        daemon.remember_daemon()
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if process.environ().get("NUA_SERVICE", "").startswith(f"{SERVICE}@"):
                    process.kill()


def token(daemon: DaemonEnv, name: str, role: str, ttl: str = "1h") -> str:
    added = daemon.cli("keys", "add", name, "--role", role, "--output", str(daemon.root / f"{name}.key_secret"))
    assert added.returncode == 0, added.stderr
    made = daemon.cli("keys", "token", name, "--ttl", ttl)
    assert made.returncode == 0, made.stderr
    return made.stdout.split()[-1]


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    service = Service(DRIVER)
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()
        process = service.process
        if process is not None and process.poll() is None:  # by its pid, should quit not have ended it
            process.kill()


def log_in(browser: WebDriver, url: str, secret: str) -> None:
    browser.get(url + "/")
    field = WebDriverWait(browser, WAIT_S).until(lambda b: b.find_element(By.ID, "token"))
    WebDriverWait(browser, WAIT_S).until(lambda _b: field.is_displayed())
    field.send_keys(secret)
    browser.find_element(By.ID, "login-button").click()
    WebDriverWait(browser, WAIT_S).until(lambda b: b.find_elements(By.CSS_SELECTOR, f"tr[data-service='{SERVICE}']"))


def cell(browser: WebDriver, field: str) -> str:
    """A field of the service's row, read in one script: the page may replace its rows at any moment."""
    found = browser.execute_script(
        "const cell = document.querySelector(arguments[0]); return cell === null ? null : cell.textContent;",
        f"tr[data-service='{SERVICE}'] [data-field='{field}']",
    )
    return "" if found is None else str(found)


def service_pid(daemon: DaemonEnv) -> int:
    code, status = daemon.status()
    assert code == 0
    services = next(child for child in status["tree"]["children"] if child["id"] == "services")
    detail: dict[str, Any] = next(child for child in services["children"] if child["id"] == SERVICE)["detail"]
    return int(detail["pid"])


def test_log_in_and_see_the_tree(daemon: DaemonEnv, console: str, browser: WebDriver) -> None:
    log_in(browser, console, token(daemon, "olga", "operator"))
    tree = browser.find_element(By.ID, "tree").text
    for child in ("root", "db_writer", "services", SERVICE, "gateway", "http"):
        assert child in tree
    WebDriverWait(browser, WAIT_S).until(lambda _b: cell(browser, "state") == "RUNNING")
    assert cell(browser, "pid") == str(service_pid(daemon))
    assert "olga (operator)" in browser.find_element(By.ID, "who").text
    shot = os.environ.get("NUA_CONSOLE_SCREENSHOT")
    if shot:
        browser.save_screenshot(shot)


def test_a_killed_process_shows_its_restart_without_a_reload(
    daemon: DaemonEnv, console: str, browser: WebDriver
) -> None:
    log_in(browser, console, token(daemon, "olga", "operator"))
    WebDriverWait(browser, WAIT_S).until(lambda _b: cell(browser, "state") == "RUNNING")
    before = int(cell(browser, "restarts"))
    browser.execute_script("window.nuaTestMarker = 'same page';")
    os.kill(service_pid(daemon), signal.SIGKILL)
    WebDriverWait(browser, WAIT_S).until(lambda _b: cell(browser, "restarts") == str(before + 1))
    assert browser.execute_script("return window.nuaTestMarker;") == "same page"  # not reloaded


def test_restart_a_service_from_the_page(daemon: DaemonEnv, console: str, browser: WebDriver) -> None:
    log_in(browser, console, token(daemon, "olga", "operator"))
    WebDriverWait(browser, WAIT_S).until(lambda _b: cell(browser, "state") == "RUNNING")
    old_pid = service_pid(daemon)
    # Clicked in one script: a refresh may replace the row between finding the button and clicking it.
    browser.execute_script(
        "document.querySelector(arguments[0]).click();", f"tr[data-service='{SERVICE}'] button[data-action='restart']"
    )
    dialog = browser.find_element(By.ID, "confirm")
    WebDriverWait(browser, WAIT_S).until(lambda _b: dialog.is_displayed())
    assert SERVICE in browser.find_element(By.ID, "confirm-text").text
    browser.find_element(By.ID, "confirm-ok").click()
    WebDriverWait(browser, WAIT_S).until(lambda b: b.find_element(By.ID, "result").text.startswith("Done: restart"))
    assert service_pid(daemon) != old_pid
    WebDriverWait(browser, WAIT_S).until(lambda _b: cell(browser, "pid") == str(service_pid(daemon)))


def test_the_keyboard_focus_survives_a_refresh(daemon: DaemonEnv, console: str, browser: WebDriver) -> None:
    log_in(browser, console, token(daemon, "olga", "operator"))
    WebDriverWait(browser, WAIT_S).until(lambda _b: cell(browser, "state") == "RUNNING")
    browser.execute_script(
        "document.querySelector(arguments[0]).focus();", f"tr[data-service='{SERVICE}'] button[data-action='stop']"
    )
    before = cell(browser, "uptime")
    WebDriverWait(browser, WAIT_S).until(lambda _b: cell(browser, "uptime") != before)  # the rows were replaced
    focused = browser.execute_script("return document.activeElement.getAttribute('aria-label');")
    assert focused == f"stop {SERVICE}"


def test_a_reader_gets_no_buttons(daemon: DaemonEnv, console: str, browser: WebDriver) -> None:
    log_in(browser, console, token(daemon, "rita", "reader"))
    assert "rita (reader)" in browser.find_element(By.ID, "who").text
    assert browser.find_elements(By.CSS_SELECTOR, "#services button") == []
    assert browser.find_elements(By.CSS_SELECTOR, "#jobs button") == []


def test_an_expired_token_is_sent_back_to_log_in(daemon: DaemonEnv, console: str, browser: WebDriver) -> None:
    # Long enough for the login itself to succeed on a loaded machine, short enough to wait for.
    log_in(browser, console, token(daemon, "olga", "operator", ttl="10s"))
    assert browser.find_element(By.ID, "console").is_displayed()
    login = browser.find_element(By.ID, "login")
    WebDriverWait(browser, WAIT_S).until(lambda _b: login.is_displayed())
    assert "Log in again" in browser.find_element(By.ID, "login-reason").text
    assert not browser.find_element(By.ID, "console").is_displayed()
