"""`tq web`: the console in a real browser (Debian's chromium + chromedriver, headless,
through selenium), behind the API tokens, and its hostile requests.

One `tq web` process and one browser for the module. The page draws on a canvas,
so what the console shows is read from the websocket frames the page receives
(a hook installed before the page's own script), with escape sequences removed.
The screenshot goes to tmp_path; TQ_UPDATE_SCREENSHOTS=1 also writes it to
docs/console/ (the one committed there).
"""
from __future__ import annotations

import asyncio
import http.client
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tq.config import ConfigError
from tq.history import write_records
from tq.http.console import COOKIE, ConsoleServer, child_command, child_environment
from tq.queries import status
from tq.tokens import Token, Tokens

from conftest import Backend, wait_for
from test_tui import failed_records

OPERATE = "ops-" + "o" * 20
READ = "viewer-" + "v" * 20
TOKENS = f"ops:{OPERATE}:operate,viewer:{READ}:read"
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "console"
DEADLINE = 30.0

HOOK = """
window.__tq = [];
const Native = window.WebSocket;
window.WebSocket = function (url, protocols) {
  const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
  const decoder = new TextDecoder();
  ws.addEventListener('message', (event) => {
    if (typeof event.data === 'string') { window.__tq.push(event.data); }
    else if (event.data instanceof ArrayBuffer) { window.__tq.push(decoder.decode(event.data)); }
    else if (event.data && event.data.text) { event.data.text().then((t) => window.__tq.push(t)); }
  });
  return ws;
};
window.WebSocket.prototype = Native.prototype;
Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
"""
ANSI = re.compile(r"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-_])")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    backend = Backend("embedded", tmp)
    write_records(backend.runtime().history_db(),
                  failed_records([f"report-{n}" for n in range(6)], task="tq.tasks.demo.echo"))
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("TQ_") or key.startswith("TQ_TEST_")}
    environment.update(backend.env, TQ_API_TOKENS=TOKENS)
    log = tmp / "web.log"
    process = subprocess.Popen([sys.executable, "-m", "tq.cli", "web", "--port", "0"],
                               cwd=tmp, env=environment, stdout=subprocess.DEVNULL,
                               stderr=log.open("w"))
    try:
        found = wait_for(lambda: re.search(r"http://127\.0\.0\.1:(\d+)/", log.read_text())
                         or (process.poll() is not None and log.read_text() + " (exited)"),
                         timeout=DEADLINE, message="tq web to listen")
        assert not isinstance(found, str), found
        yield {"port": int(found.group(1)), "log": log, "process": process,
               "backend": backend}
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        backend.cleanup()


def request(server, path: str, headers: dict[str, str] | None = None
            ) -> tuple[int, dict[str, str], str]:
    connection = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=DEADLINE)
    try:
        connection.putrequest("GET", path, skip_host=True)
        headers = {"Host": f"127.0.0.1:{server['port']}", **(headers or {})}
        for key, value in headers.items():
            connection.putheader(key, value)
        connection.endheaders()
        response = connection.getresponse()
        return (response.status, {k.lower(): v for k, v in response.getheaders()},
                response.read().decode("utf-8", "replace"))
    finally:
        connection.close()


def sign_in(server, token: str) -> str:
    status, headers, _ = request(server, f"/?token={token}")
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and token not in cookie
    return cookie.split(";")[0]


UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}

# (what, path, headers (a {cookie} is a signed-in session's), statuses accepted)
HOSTILE = [
    ("no token, no cookie", "/", {}, {401}),
    ("wrong token", "/?token=not-a-token-at-all-0000", {}, {401}),
    ("empty token", "/?token=", {}, {401}),
    ("markup token", "/?token=%3Cscript%3Ealert(1)%3C/script%3E[b]x[/b]", {}, {401}),
    ("escape sequences", "/?token=%1B%5B31m%1B%5D0;title%07%00", {}, {401}),
    ("bad UTF-8", "/?token=%FF%FE%C0%AF", {}, {401}),
    ("huge token", "/?token=" + "A" * 60_000, {}, {400, 401, 414, 431}),
    ("a real token in a huge line", f"/?token={READ}&pad=" + "A" * 60_000, {}, {400}),
    ("two tokens", f"/?token=x&token={OPERATE}", {}, {401}),
    ("a good token on another path", f"/ws?token={OPERATE}", {}, {401}),
    ("token as a header only", "/", {"Authorization": f"Bearer {OPERATE}"}, {401}),
    ("forged cookie", "/", {"Cookie": f"{COOKIE}=forged-session-id"}, {401}),
    ("the token as the cookie", "/", {"Cookie": f"{COOKIE}={OPERATE}"}, {401}),
    ("huge cookie", "/", {"Cookie": f"{COOKIE}=" + "x" * 6000}, {400, 401, 431}),
    ("markup cookie", "/", {"Cookie": f"{COOKIE}=<b>[red]x"}, {401}),
    ("websocket without cookie", "/ws", UPGRADE, {401}),
    ("websocket with a forged cookie", "/ws", {**UPGRADE, "Cookie": f"{COOKIE}=abc"}, {401}),
    ("websocket from another origin", "/ws",
     {**UPGRADE, "Cookie": "{cookie}", "Origin": "http://evil.example"}, {403}),
    ("download without cookie", "/download/anything", {}, {401}),
    ("hostile Host header", "/", {"Cookie": "{cookie}", "Host": "x\"><script>y</script>"},
     {400}),
]


@pytest.mark.parametrize("what, path, headers, statuses", HOSTILE,
                         ids=[case[0] for case in HOSTILE])
def test_hostile_requests_are_refused_with_one_line(server, what, path, headers, statuses):
    cookie = sign_in(server, OPERATE) if "{cookie}" in headers.values() else ""
    headers = {key: value.replace("{cookie}", cookie) for key, value in headers.items()}
    status, answer, body = request(server, path, headers)
    assert status in statuses, (what, status, body[:200])
    assert "set-cookie" not in answer
    if what != "a real token in a huge line":  # aiohttp's 400 quotes it back to the sender
        assert len(body.strip().splitlines()) <= 1, body[:500]
        for secret in (OPERATE, READ, "<script", "[b]", "\x1b"):
            assert secret not in body
    log = server["log"].read_text()
    assert OPERATE not in log and READ not in log and "Traceback" not in log


def test_a_token_becomes_a_cookie_and_leaves_no_trace(server):
    cookie = sign_in(server, READ)
    status, headers, body = request(server, "/", {"Cookie": cookie})
    assert status == 200 and "textual.js" in body
    assert READ not in body and headers.get("referrer-policy") == "no-referrer"
    assert request(server, "/static/js/textual.js")[0] == 200  # public: the page's script
    log = server["log"].read_text()
    assert "GET / 303" in log  # the access log is on, and writes paths without queries
    assert OPERATE not in log and READ not in log and "token=" not in log.split("\n", 1)[1]


# --- the browser -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        pytest.skip(f"no {CHROMIUM} / {DRIVER}: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,760"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": HOOK})
    driver.set_page_load_timeout(DEADLINE)
    yield driver
    driver.quit()


class Screen:
    """What the console in `driver` has drawn since the last `wait`."""

    def __init__(self, driver) -> None:
        self.driver = driver
        self.seen = ""

    def wait(self, *words: str) -> str:
        def drawn() -> str | None:
            frames = self.driver.execute_script("return window.__tq.splice(0)") or []
            self.seen += ANSI.sub("", "".join(frames))
            return self.seen if all(word in self.seen for word in words) else None
        try:
            text = wait_for(drawn, timeout=DEADLINE, message=f"the console to draw {words}")
        except AssertionError:
            raise AssertionError(f"never drawn {words}; last: {self.seen[-1500:]!r}") from None
        self.seen = ""
        return text

    def press(self, key: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        # The terminal takes keys once it has the focus, as a person's click gives it.
        self.driver.find_element("css selector", ".xterm-screen").click()
        ActionChains(self.driver).send_keys(key).perform()


def open_console(browser, server, token: str) -> Screen:
    browser.delete_all_cookies()
    browser.get(f"http://127.0.0.1:{server['port']}/?token={token}")
    assert browser.current_url == f"http://127.0.0.1:{server['port']}/"  # token gone
    return Screen(browser)


def test_the_console_in_a_browser_shows_queues_and_switches_screens(server, browser,
                                                                    tmp_path):
    screen = open_console(browser, server, OPERATE)
    first = screen.wait("queued", "default", "Requeue failed")
    assert "READ-ONLY" not in first
    screen.press("2")  # the Jobs screen, with its tabs and the failed jobs
    screen.wait("scheduled", "succeeded", "report-")
    shot = tmp_path / "jobs.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("TQ_UPDATE_SCREENSHOTS"):
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS / "browser-jobs.png")


def test_a_read_tokens_console_is_read_only_and_refuses_an_action(server, browser):
    screen = open_console(browser, server, READ)
    screen.wait("READ-ONLY", "default")
    screen.press("p")  # pause the queue under the cursor
    screen.wait("read-only console")
    runtime = server["backend"].runtime()
    assert not runtime.control.paused()
    assert not status(runtime)["queues"]["default"]["paused"]


# --- the rules, without a browser ---------------------------------------------------------

def test_the_child_gets_the_settings_but_not_the_tokens():
    base = {"TQ_API_TOKENS": TOKENS, "TQ_CONFIG": "/etc/tq.ini", "TQ_QUEUE_URL": "redis://q",
            "PATH": "/bin"}
    viewer = Token("viewer", "read")
    env = child_environment(viewer, base)
    assert "TQ_API_TOKENS" not in env and env["TQ_CONFIG"] == "/etc/tq.ini"
    assert env["TQ_QUEUE_URL"] == "redis://q" and env["TQ_AUDIT_USER"] == "api:viewer"
    assert child_command(viewer, "tq.ini").endswith(" tui --read-only")
    assert "--config" in child_command(viewer, "tq.ini")
    assert child_command(Token("ops", "operate"), None).endswith(" tui")


def test_the_audit_trail_names_the_token(monkeypatch):
    from tq import audit

    monkeypatch.setenv(audit.AUDIT_USER_ENV, "api:viewer")
    assert audit.who() == "api:viewer"
    with audit.acting_as("api:other"):
        assert audit.who() == "api:other"


def test_without_tokens_it_binds_loopback_only_and_serves_loopback_as_the_operator():
    with pytest.raises(ConfigError, match="loopback only"):
        ConsoleServer(Tokens(), host="0.0.0.0", port=0)

    async def scenario() -> list[int]:
        import aiohttp

        runner, port = await ConsoleServer(Tokens(), host="127.0.0.1", port=0).start()
        statuses = []
        try:
            async with aiohttp.ClientSession() as session:
                for host in (f"127.0.0.1:{port}", f"localhost:{port}",
                             f"rebound.example:{port}"):
                    async with session.get(f"http://127.0.0.1:{port}/",
                                           headers={"Host": host}) as response:
                        statuses.append(response.status)
        finally:
            await runner.cleanup()
        return statuses
    assert asyncio.run(scenario()) == [200, 200, 403]


def test_tq_web_refuses_a_public_bind_without_tokens(tmp_path):
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("TQ_")}
    environment["TQ_TQ_DATA_DIR"] = str(tmp_path / "data")
    result = subprocess.run([sys.executable, "-m", "tq.cli", "web", "--bind", "0.0.0.0",
                             "--port", "0"], cwd=tmp_path, env=environment,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "loopback only" in result.stderr
