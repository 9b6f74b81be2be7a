"""The child-process harness every benchmark runs its measurements through."""
import sys

import pytest

from recbole_dien.benchmark.harness import PHASE_PREFIX, ChildResult, child_command, run_child


def python(code):
    return [sys.executable, "-c", code]


def test_the_last_json_object_line_is_the_result():
    done = run_child(python("import json\nprint({'logged': 'dict'})\nprint(json.dumps({'a': 1}))\n"
                            "print(\"{'not': json}\")\nprint('done')"))
    assert done == ChildResult("ok", result={"a": 1}, peak_gb=done.peak_gb) and done.ok


def test_a_failing_child_reports_its_last_error_line():
    done = run_child(python("import sys\nprint('{\"partial\": 1}')\nsys.exit('the measurement broke')"))
    assert (done.status, done.error, done.result) == ("failed", "the measurement broke", {})
    silent = run_child(python("import sys; sys.exit(3)"))
    assert (silent.status, silent.error) == ("failed", "exit code 3")
    no_result = run_child(python("print('no json here')"))
    assert (no_result.status, no_result.error) == ("failed", "exit code 0")


def test_a_child_past_its_timeout_is_stopped_during_its_phase():
    # as print_phase writes it (importing the package would take longer than the timeout)
    done = run_child(python(f"import time\nprint({PHASE_PREFIX!r} + 'train', flush=True)\ntime.sleep(30)"),
                     timeout=3)
    assert done.status == "timeout" and not done.ok
    assert done.error.startswith("no result within 3 s after ") and done.error.endswith("during train")


def test_a_child_past_its_memory_limit_is_stopped():
    done = run_child(python("import time\nblock = bytearray(400 * 2 ** 20)\nblock[::4096] = b'x' * len(block[::4096])\n"
                            "time.sleep(30)"), timeout=60, memory_limit_gb=0.2)
    assert done.status == "memory"
    assert done.error.startswith("resident memory passed 0.2 GB") and done.error.endswith("during start")
    assert done.peak_gb > 0.2   # rounded up: a child stopped just past the limit reads as past it


def test_child_command_passes_the_spec_as_json(tmp_path):
    script = tmp_path / "child.py"
    script.write_text("import json, sys\nfrom recbole_dien.benchmark.harness import print_result\n"
                      "print_result({'got': json.loads(sys.argv[2])})\n")
    assert run_child(child_command(script, {"x": [1, 2]})).result == {"got": {"x": [1, 2]}}


@pytest.mark.parametrize("error_chars", [5, 300])
def test_error_lines_are_cut_to_error_chars(error_chars):
    done = run_child(python("import sys; sys.exit('x' * 400)"), error_chars=error_chars)
    assert done.error == "x" * error_chars


@pytest.mark.parametrize("gb, reported", [(0.2004, 0.21), (0.2, 0.2), (0.0, 0.0), (1.234, 1.24)])
def test_peaks_are_rounded_up_to_a_hundredth_of_a_gb(gb, reported):
    from recbole_dien.benchmark.harness import _rounded_up
    assert _rounded_up(gb) == reported
