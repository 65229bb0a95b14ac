"""Alias moves are serialised (the lock that remains after run isolation replaced the
workspace lock): a promote or rollback waits while another holds the registry lock."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sftops.mlops import registry as R
from sftops.mlops.promotion import Decision
from sftops.mlops.registry import aliases


def test_promote_and_rollback_wait_for_the_alias_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    # the alias moves themselves (MLflow calls) are not under test: record when they happen
    monkeypatch.setattr(
        aliases, "_promote", lambda *args, **kwargs: order.append("promote") or True
    )
    monkeypatch.setattr(
        aliases, "_rollback", lambda *args, **kwargs: order.append("rollback") or "1"
    )
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with R.alias_lock(tmp_path):
            held.set()
            release.wait(60)
            order.append("holder done")

    first = threading.Thread(target=holder)
    first.start()
    assert held.wait(60)
    movers = [
        threading.Thread(
            target=R.promote, args=("m", 2, Decision.manual("x"), "x"), kwargs={"root": tmp_path}
        ),
        threading.Thread(target=R.rollback, args=("m", "x"), kwargs={"root": tmp_path}),
    ]
    for mover in movers:
        mover.start()
    for mover in movers:
        mover.join(0.5)
    try:
        assert order == [] and all(m.is_alive() for m in movers)  # both wait for the holder
    finally:
        release.set()
        for thread in (first, *movers):
            thread.join(60)
    assert order[0] == "holder done"
    assert sorted(order[1:]) == ["promote", "rollback"]
    assert (tmp_path / ".sftops" / "registry.lock").is_file()  # in the project, not the cwd
