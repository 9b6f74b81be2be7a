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
the operating system while the process lives (each process: DataLoader workers and DDP ranks
inherit or apply it too). The setting is process-wide, cannot be undone, and applies to glibc
(Linux) only; elsewhere :func:`keep_freed_memory` does nothing, and with another allocator
preloaded (jemalloc, tcmalloc) ``mallopt`` is that allocator's, which may ignore it.

Every RecBole trainer applies it when it is built (:func:`trainer_init`, installed by
:mod:`recbole_dien.compat`), unless its config says ``keep_freed_memory: False``; once applied,
it stays for the life of the process. Not earlier: building a dataset allocates and frees large blocks
once, and keeping them raised the peak memory of building a 20M-interaction log from 3.4 to
4.55 GB (docs/performance.md).
"""
import ctypes
import logging
import platform

# mallopt parameters of glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

THRESHOLD_BYTES = 1 << 30  # allocations up to 1 GiB come from the heap; up to 1 GiB of free heap is kept
# what older glibc releases accept at most for the mmap threshold on 64-bit (HEAP_MAX_SIZE / 2)
OLD_GLIBC_MMAP_THRESHOLD_BYTES = 32 << 20

_applied = False
log = logging.getLogger(__name__)


def _glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not hasattr(libc, "mallopt"):
        return None
    libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return libc


def keep_freed_memory():
    """Raise glibc's mmap and trim thresholds to :data:`THRESHOLD_BYTES` (once per process; an
    older glibc that refuses that mmap threshold gets its largest, 32 MiB). Returns whether both
    are in effect (False where the C library is not glibc). Setting either threshold switches
    glibc's dynamic adjustment off for good: nothing in glibc turns it back on."""
    global _applied
    if _applied:
        return True
    libc = _glibc()
    if libc is None:
        return False
    mmap_set = libc.mallopt(_M_MMAP_THRESHOLD, THRESHOLD_BYTES) or libc.mallopt(
        _M_MMAP_THRESHOLD, OLD_GLIBC_MMAP_THRESHOLD_BYTES)
    trim_set = libc.mallopt(_M_TRIM_THRESHOLD, THRESHOLD_BYTES)
    _applied = bool(mmap_set) and bool(trim_set)
    return _applied


def apply(config):
    """What ``keep_freed_memory`` asks of a config (a missing setting means True). Once the
    setting is applied, a later ``False`` cannot undo it, and says so."""
    if config["keep_freed_memory"] is not False:
        keep_freed_memory()
    elif _applied:
        log.warning("keep_freed_memory: False has no effect in this process: an earlier trainer already "
                    "raised glibc's thresholds, which cannot be undone; start a fresh process to run with glibc's own")


def trainer_init(original):
    """``AbstractTrainer.__init__`` that first applies ``keep_freed_memory``: a trainer is built
    after the data, so the setting serves training and evaluation, not the dataset's build."""
    def __init__(self, config, model):
        apply(config)
        return original(self, config, model)

    return __init__
