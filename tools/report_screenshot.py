"""Screenshot a run's report.html with headless Chromium, for docs/images/report.png.

    uv run --group browser python tools/report_screenshot.py OUT [--to docs/images/report.png]

OUT is a run's out folder (its report is written first if absent). The page is shown at a
fixed window width; the top ``--height`` pixels are kept and the PNG is reduced to a
palette so that it stays small (about 300 KB). Needs the system's Chromium and
chromedriver (``apt-get install -y chromium chromium-driver``).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def screenshot(report: Path, to: Path, width: int, height: int) -> None:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        driver.get(report.resolve().as_uri())
        full = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, min(int(full), height))
        png = driver.get_screenshot_as_png()
    finally:
        driver.quit()
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    to.parent.mkdir(parents=True, exist_ok=True)
    image.save(to, optimize=True)
    print(f"{to}: {image.width}x{image.height}, {to.stat().st_size / 1024:.0f} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the run's out folder")
    parser.add_argument("--to", type=Path, default=Path("docs/images/report.png"))
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=1900)
    args = parser.parse_args()
    report = args.out / "report.html"
    if not report.is_file():
        from lt_train._report import write_report

        write_report(args.out)
    screenshot(report, args.to, args.width, args.height)


if __name__ == "__main__":
    main()
