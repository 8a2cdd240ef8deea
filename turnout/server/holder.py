"""Holds the serving Router and swaps it on reload. Requests hold a reference to the Router they started
on, so a reload never drops one; the old Router closes its backends once its last request is done."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

from turnout.config import Config, ConfigError
from turnout.pipeline import Router
from turnout.server import heap, metrics

log = logging.getLogger("turnout.reload")

# Read once when the process starts (cli.serve binds and sets up logging; the app's lifespan hands the HTTP
# protocol its limits): a reload that changes one is applied except for that field, and says so.
RESTART_ONLY = ("server.host", "server.port", "server.log_level", "server.log_format", "server.max_header_bytes",
                "server.max_headers", "server.header_timeout_s", "server.keep_alive_s",
                "server.shutdown_grace_s")
MISSING_POLL_S = 1.0  # how often the watched files are stat-ed besides the watch (one gone mid-replace, a missed write)
# With --workers N, uvicorn starts a worker anew on SIGHUP and when one dies, and that worker reads the file on
# disk. Each worker keeps the text of the last file it accepted here, so a worker started while the file is
# rejected serves that (and says so on /readyz) instead of failing to start over and over.
LAST_GOOD_ENV = "TURNOUT_LAST_GOOD"
Stat = tuple[int, int, int] | None  # inode, mtime, size: a replaced or rewritten file differs


class RouterHolder:
    def __init__(self, router: Router, path: Path | None = None) -> None:
        self.router = router
        _log_warnings(router)
        self.path = path
        self.generation = 1
        self.rejected: dict[str, Any] | None = None  # the last reload's failure, until a reload succeeds
        self._started = router.config  # what the restart-only settings really are
        self._lock = asyncio.Lock()
        self._retired: set[asyncio.Task[None]] = set()
        self._loaded: list[Stat] | None = None  # the watched files' stat as the serving config was read
        metrics.config_state(self.generation, rejected=False)

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> RouterHolder:
        path = Path(path)
        before = _stat([path.resolve()])  # taken before the read: a write after it is a change to pick up
        text = _read(path)
        try:
            router = Router.load(path, text=text)
        except ConfigError as exc:
            kept = _read(Path(os.environ[LAST_GOOD_ENV])) if os.environ.get(LAST_GOOD_ENV) else None
            if kept is None:
                raise
            try:
                holder = cls(Router.load(path, text=kept), path)
            except ConfigError:  # that one fails now too (a key file it names is gone): the file's problems count
                raise exc from None
            log.error("start: %s rejected, serving the last config this server accepted:\n%s", path, exc)
            holder._reject_config(exc)
            holder._loaded = before + _stat(holder.watched_files()[1:])
            return holder
        _keep_last_good(text)
        holder = cls(router, path)
        holder._loaded = before + _stat(holder.watched_files()[1:])
        return holder

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
                text = await asyncio.to_thread(_read, self.path)
                router = await asyncio.to_thread(lambda: Router.load(self.path, text=text))
            except ConfigError as exc:
                log.error("reload (%s) rejected, still serving generation %d:\n%s", reason, self.generation, exc)
                self._reject_config(exc)
                return False
            except Exception as exc:  # noqa: BLE001 - a broken file must never take the server down
                log.error("reload (%s) failed, still serving generation %d: %s: %s", reason, self.generation,
                          type(exc).__name__, exc)
                self._reject(1, f"{type(exc).__name__} while building the config")  # its text may hold anything
                return False
            _log_warnings(router)
            _keep_last_good(text)
            for name in _restart_only_changes(self._started, router.config):
                log.warning("reload (%s): %s changed in the file but is read only at start; it keeps its old value "
                            "until a restart (the rest of the reload applies)", reason, name)
            router.dispatcher.registry.adopt(self.router.dispatcher.registry)  # breakers and stats live on
            old, self.router = self.router, router
            self.generation += 1
            self.rejected = None
            metrics.config_state(self.generation, rejected=False)
            task = asyncio.create_task(old.drain_and_close())
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)
            task.add_done_callback(lambda _: heap.resettle())  # the retired Router's cycles are collectable now
            log.info("reload (%s): now serving generation %d", reason, self.generation)
            return True

    def _reject_config(self, exc: ConfigError) -> None:
        errors = [i for i in exc.issues if i.severity == "error"] or exc.issues
        self._reject(len(errors), str(errors[0]) if errors else "rejected")

    def _reject(self, errors: int, first: str) -> None:
        self.rejected = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "errors": errors,
                         "first": first[:300]}
        metrics.config_state(self.generation, rejected=True)

    def watched_files(self) -> list[Path]:
        """The config file, and the key file the serving config names."""
        assert self.path is not None
        files = [self.path.resolve()]
        auth = self.router.config.auth
        if auth is not None and auth.key_file:
            files.append(Path(self.router.config.resolve_path(auth.key_file) or auth.key_file).resolve())
        return files

    async def watch(self) -> None:
        """Reload whenever the config file or its key file changes on disk. The files are watched, not their
        folder: a log file beside the config would wake a folder watch at every line it writes (and watchfiles'
        own "1 change detected" lines in that log kept it awake for good). An editor's atomic save replaces the
        file, which the old watch no longer sees, so after anything but an in-place write the files are
        watched afresh, and a change made while none was watched is caught by comparing their stat: with the
        stat taken as the file was read (a write between the read and the watch's start is a change), and once
        a second while watching (a write before the watch was in place raises no event)."""
        if self.path is None:
            return
        logging.getLogger("watchfiles").setLevel(logging.WARNING)  # the reload lines say what matters
        seen = self._loaded if self._loaded is not None else _stat(self.watched_files())
        failing = False
        while True:
            files = self.watched_files()
            if _stat(files) != seen:
                seen = _stat(files)
                await self._reload_if_present()
                continue
            try:
                seen = await self._watch(files, seen)
                failing = False
            except Exception as exc:  # noqa: BLE001 - e.g. out of inotify watches: the stat check above still runs
                if not failing:
                    log.warning("watching %s failed (%s); looking at it every %gs instead", self.path,
                                type(exc).__name__, MISSING_POLL_S)
                failing = True
                await asyncio.sleep(MISSING_POLL_S)

    async def _watch(self, files: list[Path], seen: list[Stat]) -> list[Stat]:
        """Watch the files that exist until the set of files needs watching afresh; the stat last seen."""
        from watchfiles import Change, awatch

        present = [f for f in files if f.exists()]
        if not present:
            await asyncio.sleep(MISSING_POLL_S)
            return seen
        async for changes in awatch(*present, watch_filter=None, debounce=200, step=50, recursive=False,
                                    rust_timeout=int(MISSING_POLL_S * 1000), yield_on_timeout=True):
            if not changes:  # a timeout: the caller looks whether a file is back or changed unseen
                if _stat(files) != seen:
                    break
                continue
            await self._reload_if_present()
            # the files as they are now: after a symlink swap (a ConfigMap volume) the old target is gone and
            # the new one is what was loaded, so the caller must not reload it once more
            seen = _stat(self.watched_files())
            if any(change != Change.modified for change, _ in changes) or self.watched_files() != files:
                break
        return seen

    async def _reload_if_present(self) -> None:
        if self.path is not None and self.path.exists():
            await self.reload("file changed")
        else:  # gone for a moment (a replace in two steps) or deleted: nothing to load, keep serving
            log.warning("config file %s is gone; still serving generation %d", self.path, self.generation)

    async def aclose(self) -> None:
        """At shutdown, once uvicorn has stopped accepting and waited (up to server.shutdown_grace_s) for the
        connections in flight: what the serving Router and any retired one still run (an outcome record, a
        stream's last bookkeeping) gets a few seconds more, then everything closes."""
        grace_s = min(5.0, self._started.server.shutdown_grace_s)
        await self.router.drain_and_close(timeout=grace_s)
        if self._retired:
            await asyncio.wait(list(self._retired), timeout=grace_s)
        for task in list(self._retired):
            task.cancel()


def _log_warnings(router: Router) -> None:
    for issue in router.warnings:
        log.warning("config warning: %s", issue)


def _restart_only_changes(started: Config, new: Config) -> list[str]:
    def value(config: Config, dotted: str) -> Any:
        node: Any = config
        for part in dotted.split("."):
            node = getattr(node, part)
        return node

    return [name for name in RESTART_ONLY if value(started, name) != value(new, name)]


def _stat(files: list[Path]) -> list[Stat]:
    out: list[Stat] = []
    for f in files:
        try:
            st = f.stat()
        except OSError:
            out.append(None)
        else:
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return out


def _read(path: Path) -> str | None:
    """The file's text; None when it cannot be read (the loader then reports why)."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def _keep_last_good(text: str | None) -> None:
    target = os.environ.get(LAST_GOOD_ENV)
    if not target or text is None:
        return
    temporary = f"{target}.{os.getpid()}"
    try:
        # private (the file may hold a key written inline); replaced whole, so a worker never reads half of it
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temporary, target)
    except OSError as exc:
        log.warning("could not keep the accepted config for workers started later: %s", exc.strerror or exc)
