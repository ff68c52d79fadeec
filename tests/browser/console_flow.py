"""Drives the nuannan web console in a real browser (Debian's chromium via Playwright).

Run by a Rust integration test as a subprocess:

    console_flow.py BASE USER PASSWORD RESOLVED_PETITION_ID SHOTS_DIR EXPECTED_GRIDS

Protocol on stdout (one line each, flushed; nothing else is printed there):
    READY             logged in, the overview's EventSource is open
    <- stdin: BREACH <petition_id>   the Rust side forces that petition's deadline breach
    SEEN <petition_id>  its `escalated` feed item arrived without a reload
    DONE              every check passed (exit 0)
On any failure: SHOTS_DIR/failure.png, `FAIL: <step>: <why>` on stderr, exit 1.
Progress notes go to stderr. Screenshots: login, overview, feed, review, petition,
rates, map, units, overview-phone (.png) in SHOTS_DIR.

Chromium: $NUANNAN_CHROMIUM or /usr/bin/chromium (scripts/services.sh `browser_tools`
installs it and the pinned playwright package; no Playwright browser download).
"""

import os
import select
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect, sync_playwright

FEED_TIMEOUT_MS = 30_000  # the escalation must reach the open overview within this
STEP_TIMEOUT_MS = 15_000  # any other wait (navigation, selector, expect)
STDIN_TIMEOUT_S = 300  # how long to wait for the Rust side's BREACH line

# Records every EventSource the page opens, so READY is printed only once the
# live feed is connected (an escalation sent before that would be missed).
TRACK_EVENT_SOURCES = """
(() => {
  const Native = window.EventSource;
  if (!Native) return;
  window.__nuannanSources = [];
  window.EventSource = class extends Native {
    constructor(...args) { super(...args); window.__nuannanSources.push(this); }
  };
})();
"""


class Fail(Exception):
    pass


def log(msg):
    print(f"console_flow: {msg}", file=sys.stderr, flush=True)


def say(line):
    print(line, flush=True)


def css_str(value):
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def path_of(page):
    return unquote(urlparse(page.url).path)


def read_command(expected):
    ready, _, _ = select.select([sys.stdin], [], [], STDIN_TIMEOUT_S)
    if not ready:
        raise Fail(f"no {expected} line on stdin within {STDIN_TIMEOUT_S} s")
    line = sys.stdin.readline()
    if not line:
        raise Fail(f"stdin closed before {expected}")
    parts = line.split()
    if len(parts) != 2 or parts[0] != expected:
        raise Fail(f"expected `{expected} <petition_id>` on stdin, got {line.strip()!r}")
    return parts[1]


def run(browser, base, user, password, resolved_id, shots, expected_grids, state):
    def shot(page, name):
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    context.set_default_timeout(STEP_TIMEOUT_MS)
    context.add_init_script(TRACK_EVENT_SOURCES)
    page = state["page"] = context.new_page()
    page.on("pageerror", lambda err: state["errors"].append(str(err)))

    state["step"] = "login"
    page.goto(f"{base}/login")
    form = page.locator("#login-form")
    form.locator("input[name=user]").fill(user)
    form.locator("input[name=password]").fill(password)
    if form.locator("input[name=csrf]").count() != 1:
        raise Fail("no hidden csrf input in #login-form")
    shot(page, "login")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    if path_of(page) != "/":
        error = page.locator("#error")
        why = error.inner_text() if error.count() else "(no #error)"
        raise Fail(f"login landed on {page.url}, not /: {why}")

    state["step"] = "overview"
    page.wait_for_selector("#feed", state="attached")
    page.wait_for_selector("#backlog", state="attached")
    page.wait_for_function(
        "() => (window.__nuannanSources || []).some(s => s.readyState === EventSource.OPEN)",
        timeout=STEP_TIMEOUT_MS,
    )
    page.evaluate("() => { window.__nuannanNoReload = true; }")
    shot(page, "overview")
    say("READY")

    state["step"] = "breach"
    petition = read_command("BREACH")
    log(f"waiting for the escalation of {petition} on the live feed")
    item = f'#feed li.feed-item[data-petition={css_str(petition)}][data-type="escalated"]'
    try:
        page.wait_for_selector(item, state="attached", timeout=FEED_TIMEOUT_MS)
    except PlaywrightTimeout:
        feed = page.locator("#feed li.feed-item").evaluate_all(
            "items => items.map(i => `${i.dataset.type}:${i.dataset.petition}`)")
        raise Fail(f"no escalated item for {petition} on #feed within "
                   f"{FEED_TIMEOUT_MS // 1000} s without reload; feed has {feed}") from None
    if not page.evaluate("() => window.__nuannanNoReload === true"):
        raise Fail("the overview reloaded; the feed item must arrive over SSE")
    shot(page, "feed")
    say(f"SEEN {petition}")

    state["step"] = "review"
    page.goto(f"{base}/review")
    row = page.locator(f"table#review tr.petition[data-petition={css_str(resolved_id)}]")
    expect(row).to_have_count(1)
    shot(page, "review")
    with page.expect_navigation():
        row.locator("form.approve button.approve").click()
    if path_of(page) != f"/petitions/{resolved_id}":
        raise Fail(f"approving landed on {page.url}, not /petitions/{resolved_id}")
    expect(page.locator("#reply")).to_contain_text("approved")
    try:
        expect(page.locator("#status")).to_have_text("approved", timeout=5_000)
    except AssertionError:
        log("#status not yet approved; reloading once")
        page.reload()
        expect(page.locator("#status")).to_have_text("approved")
    shot(page, "petition")

    state["step"] = "rates"
    page.goto(f"{base}/rates")
    bars = page.locator("svg#rates-chart rect.bar").count()
    rows = page.locator("table#rates tr").count()
    if bars == 0 or rows <= 1:
        raise Fail(f"/rates shows {bars} rect.bar and {rows} table rows (want > 0 and > 1)")
    shot(page, "rates")

    state["step"] = "map"
    page.goto(f"{base}/map")
    grids = page.locator("svg#map path.grid").count()
    if grids != expected_grids:
        raise Fail(f"/map draws {grids} path.grid, expected {expected_grids}")
    if page.locator("svg#map path.grid.special").count() == 0:
        raise Fail("/map marks no grid as special")
    shot(page, "map")

    state["step"] = "units"
    page.goto(f"{base}/units/shinan")
    units = page.locator("table#units tr.unit-row").count()
    if units == 0:
        raise Fail("/units/shinan lists no tr.unit-row")
    shot(page, "units")

    state["step"] = "phone"
    phone = browser.new_context(
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
        locale="zh-CN",
        storage_state=context.storage_state(),
    )
    phone.set_default_timeout(STEP_TIMEOUT_MS)
    page = state["page"] = phone.new_page()
    page.goto(f"{base}/")
    if path_of(page) != "/":
        raise Fail(f"the phone context (same session cookie) landed on {page.url}")
    page.wait_for_selector("#feed", state="attached")
    shot(page, "overview-phone")
    inner, scroll = page.evaluate(
        "() => [window.innerWidth, document.documentElement.scrollWidth]"
    )
    if inner > 391:
        raise Fail(f"phone layout viewport is {inner} px wide: no <meta name=viewport>?")
    if scroll > inner + 1:
        raise Fail(f"overview scrolls sideways on a phone: scrollWidth {scroll} > {inner}")
    say("DONE")


def main(argv):
    if len(argv) != 7:
        print(f"FAIL: usage: {argv[0]} BASE USER PASSWORD RESOLVED_PETITION_ID "
              "SHOTS_DIR EXPECTED_GRIDS", file=sys.stderr)
        return 1
    base, user, password, resolved_id, shots, grids = argv[1:]
    shots = Path(shots)
    shots.mkdir(parents=True, exist_ok=True)
    chromium = os.environ.get("NUANNAN_CHROMIUM", "/usr/bin/chromium")
    state = {"step": "launch", "page": None, "errors": []}
    with sync_playwright() as pw:
        browser = None
        try:
            browser = pw.chromium.launch(
                executable_path=chromium, headless=True, args=["--no-sandbox"]
            )
            run(browser, base.rstrip("/"), user, password, resolved_id, shots, int(grids), state)
            return 0
        except Exception as err:  # Fail, AssertionError, Playwright errors alike
            page = state["page"]
            if page is not None:
                try:
                    page.screenshot(path=str(shots / "failure.png"), full_page=True)
                except Exception as shot_err:
                    log(f"no failure.png: {shot_err}")
            where = f" (at {page.url})" if page is not None else ""
            print(f"FAIL: {state['step']}{where}: {err}", file=sys.stderr, flush=True)
            for js_error in state["errors"]:
                print(f"FAIL: page script error: {js_error}", file=sys.stderr)
            return 1
        finally:
            if browser is not None:
                browser.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
