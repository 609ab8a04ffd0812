"""Takes the README's screenshots of the workbench, desktop and phone, in real Chromium.

    python docs/screenshots.py      # after python build.py; writes docs/screenshots/*.png

The camera is Chromium's fake capture device showing scikit-image's cat photograph, so the
Image Recognition plugin has something to recognise.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import skimage.data
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_vision import CAMERA_FLAGS, write_y4m  # noqa: E402  (the tests' camera video)

from pyjoy.devtools import launch_options, served  # noqa: E402

OUT = ROOT / "docs" / "screenshots"


def ready(page: Page) -> None:
    page.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=60_000)
    page.evaluate("pyjoy.ready")


def recognise(page: Page) -> None:
    """Runs Image Recognition from the list and waits until the camera's frames are named."""
    page.locator('.plugin-item[data-name="Image Recognition"]').get_by_role("button", name="Run").click()
    page.wait_for_selector(".plugin-window")
    page.evaluate("pyjoy.getPlugin('Image Recognition').then(p => p.startCamera())")
    for _ in range(600):
        if page.evaluate("pyjoy.getPlugin('Image Recognition').then(p => p.stats())")["recognitions"] >= 3:
            return
        page.wait_for_timeout(200)
    raise TimeoutError("Image Recognition named no camera frames in 2 minutes")


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    video = Path(tempfile.mkdtemp()) / "chelsea.y4m"
    write_y4m(skimage.data.chelsea(), video)
    args = [*CAMERA_FLAGS, f"--use-file-for-fake-video-capture={video}"]
    with served(ROOT / "dist") as url, sync_playwright() as p:
        browser = p.chromium.launch(**launch_options(args=args))
        desktop = browser.new_context(viewport={"width": 1280, "height": 800}, device_scale_factor=1)
        page = desktop.new_page()
        page.goto(url)
        ready(page)
        page.fill("#console-input", "import sys; sys.version")
        page.click("#console-run")
        page.wait_for_selector(".console-value")
        recognise(page)
        page.locator(".plugin-window").evaluate("w => Object.assign(w.style, {left: '12px', top: '12px', width: 'calc(100% - 24px)', height: '620px'})")
        page.wait_for_timeout(500)
        page.screenshot(path=OUT / "desktop.png")
        desktop.close()

        device = {**p.devices["Pixel 7"]}
        device.pop("default_browser_type", None)
        phone = browser.new_context(**device)
        page = phone.new_page()
        page.goto(url)
        ready(page)
        page.screenshot(path=OUT / "phone-plugins.png")
        recognise(page)
        page.tap('.tabbar [data-view="windows"]')
        page.wait_for_timeout(500)
        page.screenshot(path=OUT / "phone-window.png")
        phone.close()
        browser.close()
    for name in ("desktop", "phone-plugins", "phone-window"):
        print(OUT / f"{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
