"""A hook that blocking waits call between short sleeps, so a waiting cell does not freeze the UI.

In a kernel, ``job.wait()`` in a cell blocks the main thread, the only thread that may update widgets,
so without help the charts of a running job stay still until the cell ends. The store must not import
the UI, so the UI pump registers its ``tick`` here (``set_wait_hook``) and every blocking wait in the
package sleeps in slices of ``SLICE`` seconds, calling ``run_wait_hook()`` between them. The hook runs
only on the main thread (a wait in a worker thread just sleeps), and its exceptions are logged, never
raised: a broken view must not break ``wait()``.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

SLICE = 0.2     # seconds between hook calls while waiting: the UI pump's own interval

_hook: Callable[[], object] | None = None


def set_wait_hook(fn: Callable[[], object] | None) -> Callable[[], object] | None:
    """Register ``fn`` (or None to clear) to run between slices of blocking waits; returns the previous one."""
    global _hook
    previous, _hook = _hook, fn
    return previous


def get_wait_hook() -> Callable[[], object] | None:
    return _hook


def hook_active() -> bool:
    """True when a hook is registered and this is the main thread, i.e. when a wait should slice."""
    return _hook is not None and threading.current_thread() is threading.main_thread()


def run_wait_hook() -> None:
    """Run the hook if one is registered and this is the main thread; exceptions are logged and swallowed."""
    fn = _hook
    if fn is None or threading.current_thread() is not threading.main_thread():
        return
    try:
        fn()
    except Exception:  # noqa: BLE001 - the wait must go on whatever a view does
        log.exception("wait hook %r failed", fn)


def pumped_sleep(seconds: float) -> None:
    """``time.sleep(seconds)``, running the hook every ``SLICE`` seconds (and once at the end) on the main thread."""
    if not hook_active():
        time.sleep(seconds)
        return
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(SLICE, left))
        run_wait_hook()
