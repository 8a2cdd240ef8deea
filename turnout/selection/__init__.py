"""Selection algorithms: one file each, registered by name in `selectors`."""

from turnout.selection import algorithms, cheapest, contrastive, ensemble, graph, live, mf, objectives, ranking, static  # noqa: F401  (registration)
from turnout.selection import epsilon_greedy, linucb, thompson, ucb1  # noqa: F401  (registration: online)
from turnout.selection.base import Candidate, Selector, build_selector, register, selectors

__all__ = ["Candidate", "Selector", "build_selector", "register", "selectors"]
