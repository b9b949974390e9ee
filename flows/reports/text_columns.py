"""Plain-text tables for the terminal: columns aligned by display width, so Chinese labels stay whole."""

from __future__ import annotations

from collections.abc import Collection


def display_width(text: str) -> int:
    """Terminal columns `text` takes: CJK characters take two."""
    return sum(2 if "\u2e80" <= ch <= "\ufe4f" or "\uff00" <= ch <= "\uffef" else 1 for ch in text)


def aligned(table: list[tuple], right: Collection[int] = ()) -> list[str]:
    """Rows as lines, every column padded to its widest cell (the last one only when right-aligned); the
    columns in `right` are right-aligned. Cells are never cut or wrapped."""
    cells = [tuple("" if v is None else str(v) for v in line) for line in table]
    widths = [max(display_width(line[i]) for line in cells) for i in range(len(cells[0]))]
    last = len(widths) - 1

    def pad(text: str, i: int) -> str:
        fill = " " * (widths[i] - display_width(text))
        if i in right:
            return fill + text
        return text if i == last else text + fill

    return ["  ".join(pad(v, i) for i, v in enumerate(line)) for line in cells]
