"""The serving process's heap and the cyclic garbage collector. A started server holds a large heap that lives as
long as the process (the imported libraries, the compiled config, the models): about 115,000 objects with the
heuristic scenario. CPython's full collection walks all of it, about 50-100 ms each, and the few objects a request
leaves alive (its outcome record, say) trigger one every 2,500 requests or so; with the young collections this was
0.04-0.07 ms of CPU a request at concurrency 16, and a 50-100 ms stall of every request in flight each time
(measured with gc.callbacks around benchmarks/scenarios.py's heuristic load). Once the server has started, `settle`
collects once and moves what is alive to the permanent generation (gc.freeze), which the collector never walks:
a full collection then only walks what was made since. Reference counting still frees a frozen object; only one
that becomes cyclic garbage would stay, so after a reload retires a Router `resettle` takes the frozen objects
back, collects (the retired Router's cycles go) and freezes again: one full collection per reload.

Only `turnout serve` settles its heap (create_app(settle_heap=True)): an app built in a test process leaves the
collector as it is."""

from __future__ import annotations

import gc

#: young collections at 10,000 net allocations instead of 700: a request allocates a few hundred container
#: objects, nearly all gone again (by reference counting) before a collection would look at them
YOUNG_THRESHOLD = 10_000

_settled = False


def settle() -> None:
    """Collect once, then keep every object alive now out of the collector's walks (and collect the young
    generation less often)."""
    global _settled
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    _settled = True


def resettle() -> None:
    """After a reload retired a Router (once it has closed): collect its cycles, then settle again. Nothing when
    the heap was never settled."""
    if _settled:
        gc.unfreeze()
        settle()


def settled() -> bool:
    return _settled
