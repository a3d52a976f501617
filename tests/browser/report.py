"""Opens a `vog report` page in headless Chromium at 1400 px, as a reader's window, and
fails on any thumbnail caption wider than its tile or running into its neighbour. Prints
the number of captions checked. Usage: report.py PAGE.html"""
import os
import pathlib
import sys

sys.path.insert(0, os.path.dirname(__file__))
from webdriver import Browser  # noqa: E402

# Every caption's box, and whether a line of it is wider than the figure holding it.
MEASURE = """
return Array.from(document.querySelectorAll('details')).map(function (d) { d.open = true; })
  && Array.from(document.querySelectorAll('figure')).map(function (f) {
    var c = f.querySelector('figcaption'), r = c.getBoundingClientRect();
    return {text: c.textContent, overflow: c.scrollWidth > f.clientWidth + 0.5,
            left: r.left, right: r.right, top: r.top, bottom: r.bottom,
            figLeft: f.getBoundingClientRect().left, figRight: f.getBoundingClientRect().right};
  });
"""


def overlaps(a, b):
    return a["left"] < b["right"] - 0.5 and b["left"] < a["right"] - 0.5 and \
        a["top"] < b["bottom"] - 0.5 and b["top"] < a["bottom"] - 0.5


def main():
    page = pathlib.Path(sys.argv[1]).resolve()
    b = Browser(str(page.parent), width=1400, height=900)
    try:
        b.open(page.as_uri())
        boxes = b.script(MEASURE)
    finally:
        b.close()
    wide = [c["text"] for c in boxes if c["overflow"] or c["right"] > c["figRight"] + 0.5]
    assert not wide, f"captions wider than their tiles: {wide[:5]}"
    # Neighbouring tiles (the grids are laid out in document order).
    touching = [(a["text"], b["text"]) for a, b in zip(boxes, boxes[1:]) if overlaps(a, b)]
    assert not touching, f"captions running into each other: {touching[:3]}"
    print(len(boxes))


if __name__ == "__main__":
    main()
