"""ui.pager: the one Previous / Next pager (dataset explorer, results grid, layers view)."""
from __future__ import annotations

from digits_widgets.ui.pager import Pager


def test_pager_clamps_and_sets_buttons():
    items, shown = list(range(10)), []

    def show(start, end):
        shown.append(items[start:end])
        return f"{start + 1}-{end} of {len(items)}"

    pager = Pager(4, lambda: len(items), show)
    pager.go(0)
    assert pager.pages == 3 and shown[-1] == [0, 1, 2, 3] and pager.label.value == "1-4 of 10"
    assert pager.prev.disabled and not pager.next.disabled
    pager.next.click()
    pager.next.click()
    assert pager.page == 2 and shown[-1] == [8, 9] and pager.next.disabled and not pager.prev.disabled
    pager.go(99)
    assert pager.page == 2
    items[:] = []   # the count is asked again at each turn
    pager.go(1)
    assert pager.page == 0 and pager.pages == 1 and shown[-1] == [] and pager.prev.disabled and pager.next.disabled
