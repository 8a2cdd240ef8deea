"""The serving process's heap (turnout/server/heap.py): frozen once the server has started, thawed, collected and
frozen again after a reload retires a Router. Each check runs in a fresh interpreter, so this test process's own
collector is left as it was."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_settle_freezes_what_is_alive_and_resettle_collects_a_retired_cycle() -> None:
    out = run("""
        import gc, weakref
        from turnout.server import heap

        class Node:  # a stand-in for a Router: objects in a reference cycle
            pass

        retired = Node(); retired.me = retired
        alive = weakref.ref(retired)
        assert not heap.settled()
        heap.settle()
        print(gc.get_freeze_count() > 0, gc.get_threshold()[0], heap.settled())
        del retired
        gc.collect()
        print(alive() is not None)  # frozen: a full collection does not walk it
        heap.resettle()
        print(alive() is None, gc.get_freeze_count() > 0)
    """)
    assert out.splitlines() == ["True 10000 True", "True", "True True"]


def test_resettle_does_nothing_to_a_heap_never_settled() -> None:
    out = run("""
        import gc
        from turnout.server import heap
        before = gc.get_threshold()
        heap.resettle()
        print(gc.get_freeze_count(), gc.get_threshold() == before)
    """)
    assert out == "0 True"


def test_only_an_app_built_to_serve_settles_the_heap() -> None:
    out = run("""
        import asyncio, gc
        from turnout.server import create_app, heap

        async def start(app):
            async with app.router.lifespan_context(app):
                return heap.settled(), gc.get_freeze_count() > 0

        print(*asyncio.run(start(create_app(watch=False))))
        print(*asyncio.run(start(create_app(watch=False, settle_heap=True))))
    """)
    assert out.splitlines() == ["False False", "True True"]
