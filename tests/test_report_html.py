"""The report's index.html, written by the documented commands (`make report`, which runs
`python -m trainer report --run ... --corpus ... --out ...`, and the corpus-only form): its tables and escaping, and the page opened in a real headless Chromium: every image loads
(naturalWidth > 0), each table has one row per phase / source, the console shows no error and nothing but
local files is fetched. The browser check is shown to fail on a page with a missing image.

Needs Chromium, chromedriver and selenium (`.ci/run` installs them). Without them the browser test skips
with the reason, except where JETMOE_REQUIRE_BROWSER=1 (CI), where it fails.
"""
import html
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.test_report_plots import NASTY, SOURCES, make_corpus_inputs, make_report_inputs

ROOT = Path(__file__).resolve().parents[1]
PNGS = ["loss", "lr", "expert_load", "mixture", "corpus_tokens", "corpus_drops", "corpus_dedup"]
# id → (rows in <tbody>, rows in <tfoot>) for the inputs of make_report_inputs
TABLES = {"run-summary": (2, 1), "plan-phase1": (3, 1), "plan-phase2": (len(SOURCES), 1),
          "corpus-accounting": (len(SOURCES), 1), "fidelity": (5, 0)}
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1000"]


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The report of a small complete run + corpus, written by `make report`, which runs the documented
    `python -m trainer report --run ... --corpus ... --out ...`."""
    make = shutil.which("make")
    assert make, "make is needed for `make report`"
    tmp = tmp_path_factory.mktemp("html")
    run, corpus = make_report_inputs(tmp)
    out = tmp / "reports" / "tiny"
    venv = Path(sys.prefix)  # the environment running the tests; -o: do not (re)install it
    r = subprocess.run([make, "-o", f"{venv}/.installed", "report", f"VENV={venv}", f"RUN_DIR={run}",
                        f"CORPUS_DIR={corpus}", f"REPORT_DIR={out}"], cwd=ROOT, env=_env(), capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"-m trainer report --run {run} --corpus {corpus} --out {out}" in r.stdout  # the command make ran
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{n}.png" for n in PNGS] + ["index.html"])
    return out


class _Page(HTMLParser):
    """Rows per table section, image sources and every tag name, from the page's HTML."""

    def __init__(self):
        super().__init__()
        self.tables, self.images, self.tags = {}, [], set()
        self._table = self._section = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "table":
            self._table = a.get("id")
            self.tables[self._table] = {"tbody": 0, "tfoot": 0}
        elif tag in ("tbody", "tfoot", "thead"):
            self._section = tag
        elif tag == "tr" and self._table and self._section in ("tbody", "tfoot"):
            self.tables[self._table][self._section] += 1
        elif tag == "img":
            self.images.append(a.get("src"))

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None


def test_page_tables_images_and_escaping(report):
    text = (report / "index.html").read_text()
    page = _Page()
    page.feed(text)
    assert {k: (v["tbody"], v["tfoot"]) for k, v in page.tables.items()} == TABLES
    assert page.images == [f"{n}.png" for n in PNGS]  # relative, in reading order, nothing injected
    assert all((report / src).is_file() for src in page.images)
    assert html.escape(NASTY) in text and NASTY not in text
    assert "script" not in page.tags and "http://" not in text and "https://" not in text  # offline page
    assert "<style>" in text and 'rel="stylesheet"' not in text


def test_corpus_only_page(tmp_path):
    """The documented `python -m trainer report --corpus ... --out ...`: the corpus part alone."""
    corpus = make_corpus_inputs(tmp_path / "corpus")
    out = tmp_path / "reports" / "sample"
    r = subprocess.run([sys.executable, "-m", "trainer", "report", "--corpus", str(corpus), "--out", str(out)],
                       cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    page = _Page()
    page.feed((out / "index.html").read_text())
    assert {k: (v["tbody"], v["tfoot"]) for k, v in page.tables.items()} == {
        k: TABLES[k] for k in ("corpus-accounting", "fidelity")}
    assert page.images == ["corpus_tokens.png", "corpus_drops.png", "corpus_dedup.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(page.images + ["index.html"])


# ------------------------------------------------------------------------------------------- browser
def _browser():
    """A selenium Chrome driver on the system's Chromium, or skip / fail saying what is missing."""
    chrome = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        selenium = None
    missing = [name for name, ok in (("chromium", chrome), ("chromedriver", driver), ("selenium", selenium)) if not ok]
    if missing:
        why = (f"{', '.join(missing)} not installed: apt-get install -y chromium chromium-driver; "
               "pip install selenium (or run .ci/run)")
        if os.environ.get("JETMOE_REQUIRE_BROWSER") == "1":
            pytest.fail(why)
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download a driver
    return chrome, driver, webdriver, Service


CHECK_JS = """
const imgs = Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth]);
const tables = {};
for (const t of document.querySelectorAll('table')) {
  tables[t.id] = [t.tBodies.length ? t.tBodies[0].rows.length : 0, t.tFoot ? t.tFoot.rows.length : 0];
}
const fetched = performance.getEntriesByType('resource').map(e => e.name);
return {imgs: imgs, tables: tables, fetched: fetched, ready: document.readyState, title: document.title};
"""


def check_page(driver, path: Path) -> dict:
    """Open the page and return what a reader would meet: images, table rows, console errors, fetches."""
    driver.get(path.resolve().as_uri())
    got = driver.execute_script(CHECK_JS)
    console = [e for e in driver.get_log("browser") if e.get("level") in ("SEVERE", "ERROR")]
    return {"broken": [src for src, done, w in got["imgs"] if not done or w == 0],
            "images": [src for src, _, _ in got["imgs"]],
            "tables": {k: tuple(v) for k, v in got["tables"].items()},
            "console": [e["message"] for e in console],
            "remote": [u for u in got["fetched"] if not u.startswith("file://")],
            "ready": got["ready"], "title": got["title"]}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless Chromium under chromedriver, with a fresh profile; skips (or fails in CI) before the report
    is built when one is missing."""
    chrome, driver_path, webdriver, Service = _browser()
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for flag in CHROME_FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def test_page_in_headless_chromium(browser, report, tmp_path):
    good = check_page(browser, report / "index.html")
    assert good["ready"] == "complete" and good["title"] == "Report: run tiny, corpus tiny_test"
    assert good["images"] == [f"{n}.png" for n in PNGS] and good["broken"] == []
    assert good["tables"] == TABLES
    assert good["console"] == [] and good["remote"] == []

    broken = tmp_path / "broken"  # the same page with one plot missing: the check must see it
    shutil.copytree(report, broken)
    (broken / "mixture.png").unlink()
    bad = check_page(browser, broken / "index.html")
    assert bad["broken"] == ["mixture.png"]
    assert any("mixture.png" in m or "ERR_FILE_NOT_FOUND" in m for m in bad["console"]), bad["console"]
