from __future__ import annotations

import threading
import time
from pathlib import Path

from sftops.pipeline import workspace_lock


def test_a_second_run_waits_until_the_first_releases_the_workspace(tmp_path: Path) -> None:
    events: list[str] = []
    first_inside = threading.Event()

    def first() -> None:
        with workspace_lock(tmp_path, poll_seconds=0.01):
            events.append("first in")
            first_inside.set()
            time.sleep(0.3)
            events.append("first out")

    def second() -> None:
        first_inside.wait()
        with workspace_lock(tmp_path, poll_seconds=0.01):
            events.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert events == ["first in", "first out", "second in"]


def test_the_lock_is_released_when_a_run_crashes(tmp_path: Path) -> None:
    try:
        with workspace_lock(tmp_path):
            raise RuntimeError("crash")
    except RuntimeError:
        pass
    with workspace_lock(tmp_path, poll_seconds=0.01):
        pass  # acquired again without waiting
