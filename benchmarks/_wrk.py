"""wrk as a closed-loop load generator bounded in count and in time: one thread, `concurrency` connections,
the POST bodies cycled by a Lua script. wrk itself only stops at its duration (-d, the time bound); the script
says on stderr when the count is reached and wrk is then interrupted (SIGINT), after which it still reports
its full latency histogram. Its own CPU comes from the rusage of its process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from _load import Result, summarise

# The clock is CLOCK_MONOTONIC through LuaJIT's FFI: wrk's Lua has no sub-second clock of its own, and the
# elapsed time must end at the count-th response, not when wrk is interrupted.
SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } bench_ts; int clock_gettime(int, bench_ts *); ]]
local ts = ffi.new("bench_ts")
local function now() ffi.C.clock_gettime(1, ts); return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9 end
local bodies = {BODIES}
local headers = {HEADERS}
local path, limit, stream, mark = PATH, LIMIT, STREAM, MARK
sent, got, bad, first, last, marks = 0, 0, 0, 0, 0, {}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function request()
  if sent == 0 then first = now() end
  sent = sent + 1
  return wrk.format("POST", path, headers, bodies[(sent - 1) % #bodies + 1])
end
function response(status, hdrs, body)
  got = got + 1
  if status ~= 200 or (stream and not string.find(body, stream, -4096, true)) then bad = bad + 1 end
  if mark then
    local value = "-"
    for k, v in pairs(hdrs) do if string.lower(k) == mark then value = v end end
    marks[value] = (marks[value] or 0) + 1
  end
  if got == limit then
    last = now()
    io.stderr:write("limit\n"); io.stderr:flush()
    wrk.thread:stop()
  end
end
function done(summary, latency, requests)
  local t = threads[1]
  local hist = {}
  for i = 1, #latency do local v, c = latency(i); hist[#hist + 1] = string.format("[%d,%d]", v, c) end
  local m = {}
  for k, v in pairs(t:get("marks")) do m[#m + 1] = string.format("%q:%d", k, v) end
  local e = summary.errors
  io.write(string.format(
    '\n{"sent":%d,"got":%d,"bad":%d,"first":%.6f,"last":%.6f,"duration_us":%d,"socket_errors":%d,' ..
    '"marks":{%s},"hist":[%s]}\n', t:get("sent"), t:get("got"), t:get("bad"), t:get("first"), t:get("last"),
    summary.duration, e.connect + e.read + e.write + e.timeout, table.concat(m, ","), table.concat(hist, ",")))
end
"""


def _lua_string(text: str) -> str:
    level = 0
    while f"]{'=' * level}]" in text + "]":  # a text ending in "]" would close the bracket early too
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def end_marker(stream: bool | str) -> str | None:
    """What a complete streamed response has near its end: chat's [DONE], or another protocol's last event."""
    return "[DONE]" if stream is True else stream or None


def script(bodies: list[bytes], headers: dict[str, str], path: str, limit: int, stream: bool | str,
           mark_header: str | None) -> str:
    lua_headers = ", ".join(f"[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in headers.items())
    replacements = {"{BODIES}": "{" + ", ".join(_lua_string(b.decode()) for b in bodies) + "}",
                    "{HEADERS}": "{" + lua_headers + "}", "PATH": _lua_string(path), "LIMIT": str(limit),
                    "STREAM": _lua_string(marker) if (marker := end_marker(stream)) else "nil",
                    "MARK": _lua_string(mark_header.lower()) if mark_header else "nil"}
    text = SCRIPT
    for placeholder, value in replacements.items():
        text = text.replace(placeholder, value, 1)
    return text


def run_wrk(url: str, bodies: list[bytes], headers: dict[str, str], *, requests: int, concurrency: int,
            stream: bool | str, mark_header: str | None, max_seconds: float) -> Result:
    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1":
        raise ValueError(f"benchmarks only target 127.0.0.1, not {url}")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script(bodies, headers, parts.path or "/", requests, stream, mark_header))
    try:
        proc = subprocess.Popen(["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, int(max_seconds))}s", "--timeout",
                                 "60s", "-s", f.name, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = proc.stderr.readline()  # "limit" once the count is reached; b"" when wrk ends at its duration
        if line not in (b"limit\n", b""):  # the script failed: wrk would go on without it until its duration
            proc.kill()
            proc.wait()
            raise RuntimeError(f"wrk: {(line + proc.stderr.read()).decode(errors='replace')[-500:]}")
        # not proc.poll(): it would reap an exited wrk, and its rusage (its CPU) is read from wait4 below
        os.kill(proc.pid, signal.SIGINT)  # an exited but unreaped wrk is a zombie: the signal is harmless
        out = proc.stdout.read().decode()
        proc.stderr.close()
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        Path(f.name).unlink()
    report = json.loads(out.strip().splitlines()[-1])
    return _result(report, requests, usage.ru_utime + usage.ru_stime)


def _result(report: dict, limit: int, cpu_s: float) -> Result:
    """Requests and req/s count up to the limit-th response (when the clock stopped); the latencies are every
    response's, the few that arrived while wrk was being stopped included."""
    latencies = [v / 1000 for v, c in report["hist"] for _ in range(c)]
    reached = report["last"] > 0
    elapsed = report["last"] - report["first"] if reached else report["duration_us"] / 1e6
    result = summarise(latencies, report["bad"] + report["socket_errors"], elapsed,
                       limit if reached else report["got"])
    result.sent, result.loadgen_cpu_s, result.marks = report["sent"], cpu_s, report["marks"]
    return result
