"""The report of a tiny run, opened in a real headless Chromium (system package, driven by
selenium): no console errors, every chart and image rendered with a size, and the numbers
shown equal to metrics.jsonl.

Needs ``apt-get install -y chromium chromium-driver`` (``.ci/run`` installs them) and the
``browser`` dependency group (selenium); skipped with the reason when either is absent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _tiny import Tiny, tiny_config, write_images

from lt_train import train

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
        reason="Chromium is not installed: apt-get install -y chromium chromium-driver "
        "(.ci/run installs it)",
    ),
]


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is absent: uv sync --group browser"
    )
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield browser
    finally:
        browser.quit()


def _open(driver: Any, report: Path) -> None:
    driver.get(report.resolve().as_uri())
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    assert driver.execute_script("return document.readyState") == "complete"


def _sizes(driver: Any) -> list[dict[str, Any]]:
    """Every image of the page: its decoded and its rendered size."""
    return driver.execute_script(  # type: ignore[no-any-return]
        "return Array.from(document.images).map(i => ({cls: i.className, "
        "natural: i.naturalWidth * i.naturalHeight, complete: i.complete, "
        "w: i.getBoundingClientRect().width, h: i.getBoundingClientRect().height}))"
    )


def _shown(driver: Any, ident: str) -> tuple[float, str]:
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.ID, ident)
    return float(element.get_attribute("data-value")), element.text


def test_report_of_a_tiny_run_in_chromium(driver: Any, tmp_path: Path) -> None:
    data = write_images(tmp_path / "images", 32)
    # A run without monitors: its report opens cleanly too and says what is missing.
    off = train(tiny_config(tmp_path / "off", data, monitor_args={"enabled": False}))
    _open(driver, off / "report.html")
    assert driver.find_element("id", "verdict").get_attribute("data-state") == "no-monitor"

    labels = tmp_path / "labels.csv"
    rows = [f"{data / f'{i}.png'},{i % 3}" for i in range(32)]
    labels.write_text("path,label\n" + "\n".join(rows) + "\n")
    config = tiny_config(
        tmp_path / "out",
        data,
        model=Tiny(16),
        epochs=2,
        log_every_n_steps=1,
        monitor_every_n_steps=1,
        val_data=str(labels),
    )
    out = train(config)
    _open(driver, out / "report.html")  # the report the run wrote at its end

    images = _sizes(driver)
    kinds = {image["cls"] for image in images}
    assert {"chart", "views-grid", "thumb"} <= kinds
    assert sum(image["cls"] == "chart" for image in images) == 8  # 4 training, 3 monitor, kNN
    for image in images:
        assert image["complete"] and image["natural"] > 0, image
        assert image["w"] > 0 and image["h"] > 0, image

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    monitors = [r for r in records if "monitor/rankme" in r]
    knn = [r for r in records if "val/knn_top1" in r]
    end = next(r for r in records if r.get("event") == "end")
    expected = {
        "final_loss": (steps[-1]["loss"], 4),
        "first_loss": (steps[0]["loss"], 4),
        "rankme_start": (monitors[0]["monitor/rankme"], 1),
        "rankme_final": (monitors[-1]["monitor/rankme"], 1),
        "alpha_req_final": (monitors[-1]["monitor/alpha_req"], 3),
        "embedding_std_final": (monitors[-1]["monitor/embedding_std"], 3),
        "knn_top1_start": (knn[0]["val/knn_top1"], 1),
        "knn_top1_final": (knn[-1]["val/knn_top1"], 1),
        "knn_top5_final": (knn[-1]["val/knn_top5"], 1),
        "train_time_s": (end["train_time_s"], 1),
    }
    for ident, (value, digits) in expected.items():
        data_value, text = _shown(driver, ident)
        assert data_value == value, ident
        assert text == f"{value:.{digits}f}", ident
    verdict = driver.find_element("id", "verdict").text
    first, last = monitors[0]["monitor/rankme"], monitors[-1]["monitor/rankme"]
    assert f"rank {last:.0f} of 16" in verdict and f"{first:.0f} at the start" in verdict
    knn_line = driver.find_element("id", "knn-verdict").text
    assert f"kNN top-1 {knn[-1]['val/knn_top1']:.1f}%" in knn_line
    assert f"{knn[0]['val/knn_top1']:.1f}% at step 0" in knn_line
