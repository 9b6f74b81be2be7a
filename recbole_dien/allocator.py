"""Keeping freed memory in the process, so that a training step does not page-fault its large
intermediates in from the kernel again at every batch.

glibc's ``malloc`` serves an allocation above its *mmap threshold* (128 KiB, raised dynamically up
to 32 MiB by the sizes it sees freed) with a fresh ``mmap`` and gives it back with ``munmap`` when
it is freed; it also returns the top of its heap to the kernel once more than its *trim threshold*
is free there. A torch step on the CPU allocates and frees the same large tensors every batch
(attention hidden layers of [behaviours, 80] floats, their gradients, ...), so every batch pays
the kernel's page faults and page zeroing for each of them again: a cost per byte that grows with
the batch's size and made DIN's training step grow 3.8x from ``MAX_ITEM_LIST_LENGTH`` 50 to 200
for 2.26x the behaviours. Raising both thresholds lets freed memory be reused in the process
(docs/performance.md has the measurements).

The cost: memory a run frees is kept for its later allocations instead of being handed back to
the operating system while the process lives. The setting is process-wide and applies to glibc
(Linux) only; elsewhere :func:`keep_freed_memory` does nothing. The plugin's :class:`Config`
applies it unless ``keep_freed_memory: False``.
"""
import ctypes
import platform

# mallopt parameters of glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

THRESHOLD_BYTES = 1 << 30  # allocations up to 1 GiB come from the heap; up to 1 GiB of free heap is kept

_applied = False


def _glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") else None


def keep_freed_memory():
    """Raise glibc's mmap and trim thresholds to :data:`THRESHOLD_BYTES` (once per process).
    Returns whether the setting is in effect (False where the C library is not glibc)."""
    global _applied
    if _applied:
        return True
    libc = _glibc()
    if libc is None:
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    # the mmap threshold first: setting either one switches glibc's dynamic adjustment off
    _applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, THRESHOLD_BYTES)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, THRESHOLD_BYTES))
    return _applied


def apply(config):
    """What ``keep_freed_memory`` asks of a config (a missing setting means True)."""
    if config["keep_freed_memory"] is not False:
        keep_freed_memory()
