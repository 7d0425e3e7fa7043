"""Plain-text tables: the one printer behind `Net.summary()`, the gradient checker's reports,
`time_net`'s table and the benchmark's."""
from __future__ import annotations

from typing import Any, Sequence


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = (),
          indent: str = "") -> list[str]:
    """The lines of a table: the header, a rule of dashes, then one line per row. Cells are
    `str()`-ed; columns whose index is in `right` are right-aligned (numbers), the others
    left-aligned; trailing spaces are dropped."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return indent + "  ".join(c.rjust(w) if i in right else c.ljust(w)
                                  for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    return [line(cells[0]), indent + "  ".join("-" * w for w in widths)] + \
        [line(row) for row in cells[1:]]
