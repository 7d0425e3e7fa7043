"""Plain text: the one table printer behind `Net.summary()`, the gradient checker's reports,
`time_net`'s table and the benchmark's; and `listing`, for messages that name what a file holds
(the arrays of a weights file), so that no message grows with the file."""
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


def listing(names: Sequence[str], shown: int = 8, width: int = 80) -> str:
    """The first `shown` of `names` joined by ', ', each cut to `width` characters, then
    'and N more' for the rest: a file can hold a million names, a message lists a few."""
    cut = [name if len(name) <= width else name[:width - 3] + "..." for name in names[:shown]]
    rest = len(names) - len(cut)
    return ", ".join(cut) + (f" and {rest:,} more" if rest else "")
