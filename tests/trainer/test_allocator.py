import json
import os
import subprocess
import sys

import pytest

from recbole_dien import Config
from recbole_dien.trainer import allocator
from recbole_dien.utils.errors import ConfigError

glibc_only = pytest.mark.skipif(allocator._glibc() is None, reason="the setting applies to glibc only")

# Allocates, touches and frees 64 MiB with the C library a few times, printing each round's
# minor page faults (what a torch step's large intermediates meet at every batch).
_ROUNDS = """
import ctypes, json, resource, sys
from recbole_dien.trainer import allocator
libc = ctypes.CDLL(None)
libc.prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE: 4 KiB pages, whatever the host's transparent huge pages
if sys.argv[1] == "keep":
    assert allocator.keep_freed_memory()
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
faults = []
for _ in range(5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(64 * 2**20)
    ctypes.memset(block, 1, 64 * 2**20)
    libc.free(block)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps(faults))
"""
PAGES = 64 * 2**20 // 4096


def faults_per_round(mode):
    # glibc's defaults, whatever this environment tunes
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    done = subprocess.run([sys.executable, "-c", _ROUNDS, mode], capture_output=True, text=True, check=True,
                          env=environment)
    return json.loads(done.stdout.strip().splitlines()[-1])


@glibc_only
def test_freed_memory_is_reused_instead_of_faulted_in_again():
    default, kept = faults_per_round("default"), faults_per_round("keep")
    # glibc's default: every round maps fresh pages and faults each one in again
    assert all(faults > PAGES // 2 for faults in default[1:])
    # kept: the first round faults the pages in, later rounds reuse them
    assert kept[0] > PAGES // 2
    assert all(faults < PAGES // 100 for faults in kept[1:])


def build_trainer(config, train_data):
    from recbole.utils import get_trainer

    return get_trainer(config["MODEL_TYPE"], config["model"])(config, config.model_class(config, train_data._dataset))


def test_a_trainer_applies_the_setting_unless_switched_off(tiny_pipeline, monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: calls.append(True) or True)
    config, train_data, _, _ = tiny_pipeline("DIN")
    assert calls == []  # building the config and the data leaves glibc's thresholds alone
    build_trainer(config, train_data)
    assert calls == [True]
    config, train_data, _, _ = tiny_pipeline("recbole.DIN")
    build_trainer(config, train_data)
    assert calls == [True, True]
    config, train_data, _, _ = tiny_pipeline("DIN", keep_freed_memory=False)
    build_trainer(config, train_data)
    assert calls == [True, True]


def test_a_wrong_value_is_one_line(tiny_config_dict):
    with pytest.raises(ConfigError, match="keep_freed_memory.*bool") as error:
        Config("DIN", "tiny", config_dict={**tiny_config_dict, "keep_freed_memory": "yes"}, cmd_args=[])
    assert "\n" not in str(error.value)


def test_switching_off_after_it_was_applied_says_it_cannot(tiny_pipeline, monkeypatch):
    warnings = []
    monkeypatch.setattr(allocator, "_applied", True)
    monkeypatch.setattr(allocator.log, "warning", lambda message, *args: warnings.append(message % args))
    config, train_data, _, _ = tiny_pipeline("DIN", keep_freed_memory=False)
    build_trainer(config, train_data)
    assert len(warnings) == 1 and "cannot be undone" in warnings[0]
