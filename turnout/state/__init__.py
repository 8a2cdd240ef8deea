"""Shared state: what several turnout processes must see alike (the semantic cache today; counters, breakers
and bandit statistics next). Each store has an in-process implementation and a Redis one."""
