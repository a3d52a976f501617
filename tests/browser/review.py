"""Drives a `vog review` page in headless Chromium as a reviewer would: decisions by key,
an undo, a reload (the decisions must survive it), then Export. Prints the path of the
downloaded decisions.csv. Usage: review.py PAGE.html DOWNLOAD_DIR [SCREENSHOT.png]"""
import os
import pathlib
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from webdriver import Browser  # noqa: E402


def wait_for(path, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if path.exists() and not list(path.parent.glob("*.crdownload")):
            return path
        time.sleep(0.1)
    raise SystemExit(f"no {path} after {seconds} s")


def main():
    page, downloads = pathlib.Path(sys.argv[1]).resolve(), pathlib.Path(sys.argv[2]).resolve()
    shot = sys.argv[3] if len(sys.argv) > 3 else None
    b = Browser(str(downloads))
    try:
        b.open(page.as_uri())
        total = b.script("return JSON.parse(document.getElementById('data').textContent).examples.length")
        assert b.text("#progress") == f"0 / {total} decided", b.text("#progress")
        # 1: drop, 2: keep, 3: relabel as class 3, 4: unsure, 5: drop then undone,
        # then on to 6 by arrow key and drop it.
        b.press("d", "k", "r", "3", "?", "d", "u")
        assert b.text("#position").startswith("5 of"), b.text("#position")
        b.press("ArrowRight", "d", "ArrowLeft", "ArrowLeft")
        assert b.text("#decision") == "Decision: undecided", b.text("#decision")
        b.refresh()
        assert b.text("#progress") == f"5 / {total} decided", "decisions survive a reload"
        if shot:
            b.press("ArrowLeft", "ArrowLeft", "ArrowLeft")
            b.screenshot(shot)
        b.click("#export")
        print(wait_for(downloads / "decisions.csv"))
    finally:
        b.close()


if __name__ == "__main__":
    main()
