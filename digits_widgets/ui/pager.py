"""Previous / Next over items shown a page at a time: the one pager of the dataset explorer, the results
grid and the layers view.

The owner says how many items there are (``count``, asked again at each turn: a database can grow) and
draws a page in ``show(start, end)``, which returns the text beside the buttons. The pager clamps the page,
sets the buttons and the text; the owner's widgets stay the owner's.
"""
from __future__ import annotations

from typing import Callable, Sequence

import ipywidgets as w


class Pager(w.HBox):
    """``[before...] Previous Next text``; :meth:`go` turns to a page (clamped) and calls ``show``."""

    def __init__(self, per_page: int, count: Callable[[], int], show: Callable[[int, int], str],
                 before: Sequence[w.Widget] = ()) -> None:
        self.per_page, self.page, self.count, self.show = max(1, per_page), 0, count, show
        self.prev = w.Button(description="Previous", icon="arrow-left", layout=w.Layout(width="110px"))
        self.next = w.Button(description="Next", icon="arrow-right", layout=w.Layout(width="110px"))
        self.label = w.HTML()
        self.prev.on_click(lambda _b: self.go(self.page - 1))
        self.next.on_click(lambda _b: self.go(self.page + 1))
        super().__init__([*before, self.prev, self.next, self.label], layout=w.Layout(align_items="center"))

    @property
    def pages(self) -> int:
        return max(1, -(-self.count() // self.per_page))

    def go(self, page: int) -> None:
        """Show page ``page`` (clamped to the pages there are)."""
        n, pages = self.count(), self.pages
        self.page = min(max(0, page), pages - 1)
        start = self.page * self.per_page
        self.prev.disabled, self.next.disabled = self.page == 0, self.page >= pages - 1
        self.label.value = self.show(start, min(start + self.per_page, n))


class Paged:
    """Mixed into a view that pages with ``self.pager``: the page it shows, how many there are, and the
    pager's buttons and text as its own (``view.next.click()``), said once for the three paged views."""

    pager: Pager

    @property
    def page(self) -> int:
        return self.pager.page

    @property
    def pages(self) -> int:
        return self.pager.pages

    @property
    def prev(self) -> w.Button:
        return self.pager.prev

    @property
    def next(self) -> w.Button:
        return self.pager.next

    @property
    def where(self) -> w.HTML:
        """The text beside the buttons ('13–24 of 40')."""
        return self.pager.label


__all__ = ["Pager", "Paged"]
