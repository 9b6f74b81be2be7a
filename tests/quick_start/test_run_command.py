"""The run command (``recbole-dien run``, ``run_recbole.py``), run as a user runs it: a separate process."""
import subprocess
import sys
from pathlib import Path

import pytest

from recbole_dien.quick_start.quick_start import DEFAULT_DATASET, DEFAULT_MODEL, build_parser

SCRIPT = str(Path(__file__).resolve().parents[2] / "run_recbole.py")


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_help_lists_recbole_flags(tmp_path):
    done = run_cli("--help", cwd=tmp_path)
    assert done.returncode == 0
    for flag in ("--model", "--dataset", "--config_files", "--nproc", "--ip", "--port", "--world_size",
                 "--group_offset", "--key=value"):
        assert flag in done.stdout


def test_defaults_are_the_readme_quick_start():
    assert (DEFAULT_MODEL, DEFAULT_DATASET) == ("DIEN", "ml-100k")
    help_text = build_parser().format_help()
    assert "default: DIEN" in help_text and "default: ml-100k" in help_text


def test_short_flags_and_overrides_are_separated():
    args, overrides = build_parser().parse_known_args(["-m", "GRU4Rec", "-d", "x", "--epochs=1"])
    assert (args.model, args.dataset, overrides) == ("GRU4Rec", "x", ["--epochs=1"])


def assert_one_line_error(done, *fragments):
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    error_lines = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(error_lines) == 1
    for fragment in fragments:
        assert fragment in error_lines[0]


def test_unknown_model_is_one_clear_error(tmp_path):
    assert_one_line_error(run_cli("--model=DINN", cwd=tmp_path), "unknown model 'DINN'", "recbole.DIN")


def test_dataset_without_a_time_field_is_one_clear_error(tmp_path, tiny_data_path):
    done = run_cli("--model=DIN", "--dataset=notime", f"--data_path={tiny_data_path}", cwd=tmp_path)
    assert_one_line_error(done, "no column 'timestamp' (TIME_FIELD)", "notime.inter")


def test_missing_dataset_is_one_clear_error(tmp_path, tiny_data_path):
    done = run_cli("--dataset=nowhere", f"--data_path={tiny_data_path}", cwd=tmp_path)
    assert_one_line_error(done, "dataset 'nowhere' not found")


def test_malformed_override_is_rejected(tmp_path):
    done = run_cli("--epochs", "1", cwd=tmp_path)
    assert done.returncode == 2 and "--key=value" in done.stderr


@pytest.mark.parametrize("model", ["DIN", "DIEN", "DSIN"])
def test_one_epoch_run_prints_valid_and_test_results(tmp_path, tiny_data_path, model):
    done = run_cli(f"--model={model}", "--dataset=tiny", f"--data_path={tiny_data_path}", "--epochs=1",
                   "--MAX_ITEM_LIST_LENGTH=8", "--eval_args={'split':{'LS':'valid_and_test'},'order':'TO','mode':'uni20'}",
                   "--load_col={'inter':['user_id','item_id','timestamp'],'item':['item_id','year','genre']}",
                   "--show_progress=False", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "best valid: {'auc':" in done.stdout
    assert "test result: {'auc':" in done.stdout


@pytest.mark.parametrize("model", ["DIEN", "DSIN"])
def test_one_epoch_on_ml_100k(tmp_path, model):
    # the README's main job, cut to one epoch: ml-100k from the recbole package, nothing downloaded
    done = run_cli(f"--model={model}", "--dataset=ml-100k", "--epochs=1", "--show_progress=False", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    test_line = next(line for line in done.stdout.splitlines() if line.startswith("test result:"))
    auc = float(test_line.split("'auc': ")[1].split(",")[0])
    assert 0.75 < auc < 1.0


def test_help_names_all_three_models_and_the_program_it_runs_as():
    parser = build_parser(prog="recbole-dien")
    help_text = parser.format_help()
    assert help_text.startswith("usage: recbole-dien")
    assert "DIN, DIEN and DSIN" in help_text and "--resume" in help_text


def test_a_wrong_setting_is_one_line_and_exit_2_in_a_real_process(tmp_path):
    # tests/config/test_knobs.py covers every case in-process; this is the user's view of one
    assert_one_line_error(run_cli("--embedding_size=abc", cwd=tmp_path),
                          "run_recbole.py: error: invalid setting embedding_size='abc'", "props/DIEN.yaml")


def test_resume_takes_everything_from_the_checkpoint(tmp_path):
    done = run_cli("--resume=saved/x.pth", "--model=DIN", cwd=tmp_path)
    assert done.returncode == 2 and "leave out --model, --dataset and --config_files" in done.stderr
    assert_one_line_error(run_cli("--resume=saved/x.pth", cwd=tmp_path), "checkpoint saved/x.pth does not exist")
