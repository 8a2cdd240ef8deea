"""Holds the serving Router and swaps it on reload. Requests hold a reference to the Router they started
on, so a reload never drops one; the old Router closes its backends once its last request is done."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from turnout.config import ConfigError, load_config
from turnout.pipeline import Router

log = logging.getLogger("turnout.reload")


class RouterHolder:
    def __init__(self, router: Router, path: Path | None = None) -> None:
        self.router = router
        _log_warnings(router)
        self.path = path
        self.generation = 1
        self._lock = asyncio.Lock()
        self._retired: set[asyncio.Task[None]] = set()

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> "RouterHolder":
        return cls(Router.build(load_config(path)), Path(path))

    async def health_checks(self) -> None:
        """Active health checks of the serving router's backends, at the shortest configured interval."""
        while True:
            interval = self.router.dispatcher.health_check_interval()
            if interval is None:
                await asyncio.sleep(5)  # none configured (a reload may add some)
                continue
            await asyncio.sleep(interval)
            try:
                await self.router.dispatcher.check_health()
            except Exception as exc:  # noqa: BLE001 - a check must never stop the checker
                log.warning("health check round failed: %s", type(exc).__name__)

    async def reload(self, reason: str) -> bool:
        """Build a Router from the file; on any problem keep the current one. True when swapped."""
        if self.path is None:
            log.info("reload (%s) ignored: serving the embedded default, not a file", reason)
            return False
        async with self._lock:
            try:
                router = await asyncio.to_thread(lambda: Router.build(load_config(self.path)))
            except ConfigError as exc:
                log.error("reload (%s) rejected, still serving generation %d:\n%s", reason, self.generation, exc)
                return False
            except Exception as exc:  # noqa: BLE001 - a broken file must never take the server down
                log.error("reload (%s) failed, still serving generation %d: %s: %s", reason, self.generation,
                          type(exc).__name__, exc)
                return False
            _log_warnings(router)
            router.dispatcher.registry.adopt(self.router.dispatcher.registry)  # breakers and stats live on
            old, self.router = self.router, router
            self.generation += 1
            task = asyncio.create_task(old.drain_and_close())
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)
            log.info("reload (%s): now serving generation %d", reason, self.generation)
            return True

    async def watch(self) -> None:
        """Reload whenever the config file changes on disk."""
        if self.path is None:
            return
        from watchfiles import awatch

        target = self.path.resolve()
        async for changes in awatch(target.parent, debounce=200, step=50, recursive=False):
            if any(Path(p).resolve() == target for _, p in changes):
                await self.reload("file changed")

    async def aclose(self) -> None:
        await self.router.aclose()
        for task in list(self._retired):
            task.cancel()


def _log_warnings(router: Router) -> None:
    for issue in router.warnings:
        log.warning("config warning: %s", issue)
