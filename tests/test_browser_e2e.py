"""End to end in a real headless browser: streamlit run app.py on 127.0.0.1, upload, overlay, chart."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.slow


def _need_browser():
    ok = Path(CHROMIUM).exists()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        ok = False
    if not ok:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium and playwright for the browser test (see .ci/run)")
        pytest.skip("chromium or playwright not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    _need_browser()
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port",
                             str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
                             "--browser.gatherUsageStats", "false"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not start: " + proc.stdout.read().decode()[-2000:])
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _png(tmp_path) -> Path:
    from ctmodels.examples import lesion_volume
    from ctmodels.preprocessing import window_hu

    v = lesion_volume(n_slices=2)
    p = tmp_path / "slice.png"
    Image.fromarray(window_hu(v.voxels[0], -600, 1500)).save(p)
    return p


def test_upload_overlay_and_chart_in_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server, wait_until="domcontentloaded")
        page.get_by_text("Lesion segmentation").first.wait_for(timeout=120_000)
        page.locator("input[type=file]").first.set_input_files(str(_png(tmp_path)))
        # the overlay image and the grade appear once the model has run
        page.get_by_text("slice 0 -").first.wait_for(timeout=180_000)
        grade = page.locator("[data-testid=stMetricValue]").filter(has_text="CT-").first
        grade.wait_for(timeout=60_000)
        assert grade.inner_text().strip().startswith("CT-")
        img = page.locator("[data-testid=stImage] img").first
        img.wait_for(timeout=60_000)
        box = img.bounding_box()
        assert box and box["width"] > 200
        assert page.locator("[data-testid=stException]").count() == 0
        page.screenshot(path=str(ARTIFACTS / "e2e_lesions.png"), full_page=True)
        # the severity page draws its altair chart
        page.get_by_text("Study severity").first.click()
        page.locator(".vega-embed").first.wait_for(timeout=180_000)
        assert page.locator("[data-testid=stException]").count() == 0
        page.screenshot(path=str(ARTIFACTS / "e2e_severity.png"), full_page=True)
        browser.close()
    shot = Image.open(ARTIFACTS / "e2e_lesions.png")
    assert shot.size[0] >= 1000
