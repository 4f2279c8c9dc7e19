"""The report in a real browser (headless Chromium): it loads without console errors, every figure decodes with a
non-zero size, the section headings are there, and a screenshot is saved. `make browser` installs Chromium."""
import html
import json
import re
import shutil
import subprocess

import pytest

from monosemantic.report.html import Section, table, write_report

BROWSER = next((b for b in ("chromium", "chromium-headless-shell", "chromium-browser", "google-chrome")
                if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no headless Chromium on this machine (make browser "
                                                        "installs Debian's chromium with apt)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"]

# collects errors from the first moment, then the images' decoded sizes and the headings once the page has loaded
PROBE = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || (e.target && e.target.src) || e)), true);
const _ce = console.error; console.error = (...a) => { window.__errors.push(a.join(" ")); _ce(...a); };
window.addEventListener("load", () => {
  const r = {errors: window.__errors,
             images: [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
             headings: [...document.querySelectorAll("h1, h2")].map(h => h.textContent)};
  const pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(r);
  document.body.appendChild(pre);
});
</script>"""


def _browser(*args, timeout=120):
    return subprocess.run([BROWSER, *FLAGS, *args], capture_output=True, text=True, timeout=timeout)


def _probe(page, probe=PROBE):
    probed = page.with_name("probed.html")
    probed.write_text(page.read_text().replace("<head>", "<head>" + probe, 1))
    out = _browser("--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    m = re.search(r'<pre id="probe">(.*?)</pre>', out.stdout, flags=re.S)
    assert m, f"the page did not finish loading: {out.stderr[-2000:]}"
    return json.loads(html.unescape(m.group(1)))


def _report(tmp_path):
    """A page of the report's own parts: the toy-run section of `monosemantic report`, and a table."""
    from monosemantic.experiments.toy import train
    from monosemantic.report.pages import toy_section

    run = train(n=5, m=2, sparsity=[0.0, 0.9], steps=100, eval_batch=512).save(tmp_path / "toy")
    extra = Section("Numbers").add(table([{"mcc_hungarian": 0.5, "support_f1": 0.9}]))
    return write_report(tmp_path / "report" / "report.html", "monosemantic: runs", [toy_section(run), extra])


@pytest.mark.slow
def test_report_in_headless_chromium(tmp_path):
    page = _report(tmp_path)
    r = _probe(page)
    assert r["errors"] == []
    assert len(r["images"]) >= 4 and all(done and w > 0 and h > 0 for done, w, h in r["images"])
    assert r["headings"][0] == "monosemantic: runs" and "Numbers" in r["headings"]
    assert any(h.startswith("Toy run toy") for h in r["headings"])
    shot = tmp_path / "report.png"
    out = _browser(f"--screenshot={shot}", "--window-size=1280,1600", page.as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000, out.stderr[-2000:]
    print(f"browser: {len(r['images'])} figures decoded; screenshot {shot}")


# the feature browser: after load, its entries, then a token search typed into the box and one that matches nothing
FEATURES_PROBE = PROBE.split('window.addEventListener("load"')[0] + """window.addEventListener("load", () => {
  const n = () => document.querySelectorAll("#list .feat").length;
  const q = document.getElementById("q"), type = v => { q.value = v; q.dispatchEvent(new Event("input")); };
  const r = {errors: window.__errors, entries: n(), count: document.getElementById("count").textContent,
             bars: document.querySelectorAll("#list svg rect").length, marks: document.querySelectorAll("#list mark").length,
             injected: document.querySelectorAll("#list img, #list script").length + (window.__pwned ? 1 : 0)};
  type("onerror"); r.searched = document.getElementById("count").textContent;
  type("no-such-token"); r.none = n();
  type(""); r.back = n();
  const pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(r);
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.slow
def test_feature_browser_in_headless_chromium(tmp_path):
    from test_real_enumeration import fake_result

    from monosemantic.report import browser

    result = fake_result(rows=600, latents=80)
    page = tmp_path / "features.html"
    page.write_text(browser.page(result))
    data = browser.page_data(result)
    live = len(data["features"])
    r = _probe(page, FEATURES_PROBE)
    assert r["errors"] == [] and r["injected"] == 0
    assert r["entries"] == min(live, browser.PER_PAGE) and r["count"] == f"{live} of {live} live latents"
    assert r["bars"] > 0 and r["marks"] >= r["entries"]
    hits = sum(any("onerror" in data["text"][row].strip() for row in f[6]) for f in data["features"])
    assert 0 < hits < live and r["searched"] == f"{hits} of {live} live latents"
    assert r["none"] == 0 and r["back"] == r["entries"]
    shot = tmp_path / "features.png"
    out = _browser(f"--screenshot={shot}", "--window-size=1280,1600", page.as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000, out.stderr[-2000:]
    print(f"feature browser: {r['entries']} of {live} entries on page 1, search 'onerror': {hits}; screenshot {shot}")
