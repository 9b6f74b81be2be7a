"""Pausing a benchmark run while other work needs the CPU, without corrupting its timings.

Two torch processes on the same cores slow each other several-fold, so a timed run must not share
the machine. A run measured by :func:`recbole_dien.benchmark.measure.measure` checks, between
batches, for *hold files* in :func:`hold_dir`; while one exists it sleeps, and the time it sleeps
is left out of every duration it records. ::

    recbole-dien benchmark --pause pytest tests/model/test_din.py   # runs pytest while runs wait

holds the benchmark for as long as the command runs: it writes a hold file, waits until every
running measurement has acknowledged the pause (at its next batch boundary), runs the command and
removes the hold. Several holds may overlap; the runs go on when the last one is gone. A run
never waits for a hold of its own ancestors: the measurements the held command starts itself (a
test of the benchmark, say) go on.
"""
import os
import subprocess
import tempfile
import time
from pathlib import Path

HOLD_DIR_VARIABLE = "RECBOLE_DIEN_BENCHMARK_HOLDS"
POLL_SECONDS = 0.2


def hold_dir():
    """The folder of hold and status files ($RECBOLE_DIEN_BENCHMARK_HOLDS, else a per-machine temp folder)."""
    folder = Path(os.environ.get(HOLD_DIR_VARIABLE) or Path(tempfile.gettempdir()) / "recbole-dien-benchmark-holds")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pids(folder, prefix):
    pids = []
    for path in folder.glob(f"{prefix}-*"):
        try:
            pids.append(int(path.name.rsplit("-", 1)[1]))
        except ValueError:
            continue
    return pids


def ancestors(pid=None):
    """This process and its ancestors' pids (Linux /proc; elsewhere this process and its parent)."""
    pid = os.getpid() if pid is None else pid
    found = {pid}
    try:
        while pid > 1:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])  # the field after the state
            found.add(pid)
    except (OSError, ValueError, IndexError):
        found.add(os.getppid())
    return found


def _live_holds(folder, ignored=()):
    holds = []
    for pid in _pids(folder, "hold"):
        if pid in ignored:
            continue
        if _alive(pid):
            holds.append(pid)
        else:  # a holder that died without cleaning up
            (folder / f"hold-{pid}").unlink(missing_ok=True)
    return holds


class PausableClock:
    """``perf_counter`` minus the time spent paused for holds: durations of a measured run."""

    def __init__(self, folder=None):
        self.folder = Path(folder) if folder else hold_dir()
        self.paused = 0.0
        self._own = ancestors()  # a command run under a hold does not pause its own measurements
        self._running = self.folder / f"running-{os.getpid()}"
        self._running.touch()

    def now(self):
        return time.perf_counter() - self.paused

    def wait_while_held(self):
        """Sleep while a hold exists; acknowledge it so the holder knows the CPU is free."""
        if not _live_holds(self.folder, self._own):
            return
        acknowledged = self.folder / f"paused-{os.getpid()}"
        start = time.perf_counter()
        acknowledged.touch()
        try:
            while _live_holds(self.folder, self._own):
                time.sleep(POLL_SECONDS)
        finally:
            acknowledged.unlink(missing_ok=True)
            self.paused += time.perf_counter() - start

    def close(self):
        self._running.unlink(missing_ok=True)


def pausing(loader, clock):
    """Make ``loader`` wait for ``clock``'s holds before handing out each batch (a subclass
    swapped in place, so RecBole's trainer iterates it unchanged)."""
    base = type(loader)

    def __iter__(self):
        for batch in base.__iter__(self):
            clock.wait_while_held()
            yield batch

    loader.__class__ = type(f"Pausing{base.__name__}", (base,), {"__iter__": __iter__})
    return loader


def hold(command, folder=None, log=print):
    """Run ``command`` (a list) while every measured run is paused; its exit code."""
    folder = Path(folder) if folder else hold_dir()
    mine = folder / f"hold-{os.getpid()}"
    mine.touch()
    try:
        announced = False
        while True:
            running = [pid for pid in _pids(folder, "running") if _alive(pid)]
            waiting = [pid for pid in running if not (folder / f"paused-{pid}").exists()]
            if not waiting:
                break
            if not announced:
                log(f"waiting for the benchmark run (pid {', '.join(map(str, waiting))}) to pause at its next batch")
                announced = True
            time.sleep(POLL_SECONDS)
        return subprocess.call(command)
    finally:
        mine.unlink(missing_ok=True)

