"""One measurement in a fresh process: the child prints its result as its last JSON line, the
parent waits for it under a time limit and, where asked, a resident-memory limit.

Every benchmark runs each measurement this way - the suite (:mod:`.suite`) and the scripts in
``benchmarks/`` - so that one run's allocations, threads and warm caches never colour the next,
and a run that dies or hangs is recorded instead of taking the benchmark down. ::

    # the child (e.g. ``python benchmarks/x.py --child SPEC``)
    print_phase("train")           # optional: what it is doing, named in the parent's note if stopped
    print_result({"rows_per_s": 1234.5})

    # the parent
    done = run_child(child_command(__file__, spec), timeout=600, memory_limit_gb=16)
    done.status, done.error, done.result, done.peak_gb
"""
import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

PHASE_PREFIX = "phase: "
POLL_SECONDS = 0.2


@dataclass
class ChildResult:
    """``status``: ``ok``, ``failed`` (non-zero exit or no JSON line), ``timeout`` or ``memory``
    (stopped at a limit); ``error``: one line saying why it is not ``ok``; ``result``: the last JSON
    object the child printed ({} unless ``ok``); ``peak_gb``: the highest resident memory seen,
    rounded up to 0.01 GB (a child stopped past a limit never reads as at it)."""
    status: str
    error: str = ""
    result: dict = field(default_factory=dict)
    peak_gb: float = 0.0
    phase: str = ""

    @property
    def ok(self):
        return self.status == "ok"


def child_command(script, spec):
    """The command that runs ``script --child <spec as JSON>`` with this interpreter."""
    return [sys.executable, str(script), "--child", json.dumps(spec)]


def print_result(result):
    """The child's result: one JSON line on stdout, the last one the parent reads."""
    print(json.dumps(result), flush=True)


def print_phase(name):
    print(f"{PHASE_PREFIX}{name}", flush=True)


def resident_gb(pid):
    """The resident memory of process ``pid`` in GB (0 when it cannot be read, e.g. it has ended)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 2 ** 20
    except OSError:
        pass
    return 0.0


def _rounded_up(gb):
    # round(gb, 2) read a child stopped at 0.2004 GB as 0.2 GB, "not past" a 0.2 GB limit (CI);
    # the inner round keeps an exact 0.2 from reading as 0.21
    return math.ceil(round(gb * 100, 6)) / 100


def _last_lines(stream, prefix=None):
    stream.seek(0)
    return [line.strip() for line in stream if line.strip() and (prefix is None or line.startswith(prefix))]


def _last_json_object(lines):
    for line in reversed(lines):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue  # e.g. a logged dict
            if isinstance(value, dict):
                return value
    return None


def run_child(command, timeout=None, memory_limit_gb=None, cwd=None, env=None, error_chars=300):
    """Run ``command`` and read its last JSON line; stop it past ``timeout`` seconds or
    ``memory_limit_gb`` of resident memory. Never raises for what the child does."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True, cwd=cwd, env=env)
        started, peak = time.perf_counter(), 0.0
        while True:
            try:
                child.wait(timeout=POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                pass
            peak = max(peak, resident_gb(child.pid))
            elapsed = time.perf_counter() - started
            over_memory = memory_limit_gb is not None and peak > memory_limit_gb
            if over_memory or (timeout is not None and elapsed > timeout):
                child.kill()
                child.wait()
                phases = _last_lines(out, PHASE_PREFIX)
                phase = phases[-1][len(PHASE_PREFIX):] if phases else "start"
                why = (f"resident memory passed {memory_limit_gb:g} GB" if over_memory
                       else f"no result within {timeout:.0f} s")
                return ChildResult("memory" if over_memory else "timeout", f"{why} after {elapsed:.0f} s, during {phase}",
                                   peak_gb=_rounded_up(peak), phase=phase)
        result = _last_json_object(_last_lines(out))
        phases = _last_lines(out, PHASE_PREFIX)
        phase = phases[-1][len(PHASE_PREFIX):] if phases else ""
        if child.returncode != 0 or result is None:
            lines = _last_lines(err)
            return ChildResult("failed", (lines[-1] if lines else f"exit code {child.returncode}")[:error_chars],
                               peak_gb=_rounded_up(peak), phase=phase)
        return ChildResult("ok", result=result, peak_gb=_rounded_up(peak), phase=phase)
