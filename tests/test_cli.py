"""The ``recbole-dien`` command: its subcommands, their help, and RecBole's script names as thin shims."""
import subprocess
import sys
from pathlib import Path

import pytest

from recbole_dien import cli

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_subcommand_with_what_it_does(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: recbole-dien")
    for name, (_, purpose) in cli.COMMANDS.items():
        assert f"  {name} " in out and purpose in out
    assert set(cli.COMMANDS) == {"run", "tune", "recommend", "export", "plot", "synthetic", "convert",
                                 "benchmark"}


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_each_subcommand_has_its_own_help(capsys, name):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    usage, _, rest = out.partition("\n\n")
    assert usage.startswith(f"usage: recbole-dien {name}")
    assert len(rest.strip().splitlines()[0]) > 20  # the description: what the command does


def test_unknown_command_is_one_line_naming_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--model=DIN"])
    assert exit_info.value.code == 2
    error = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(error) == 1
    assert "unknown command '--model=DIN'" in error[0] and "recbole-dien run --model=DIN" in error[0]
    assert all(name in error[0] for name in cli.COMMANDS)


def test_no_command_prints_the_usage_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "commands:" in capsys.readouterr().err


def test_a_subcommand_error_is_one_line_under_its_own_name(capsys, tmp_path):
    assert cli.main(["export", str(tmp_path / "missing.pth"), "--output", str(tmp_path / "m.pt2")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("recbole-dien export: error: ") and "missing.pth" in lines[0]


@pytest.mark.parametrize("script,command", [("run_recbole.py", "run"), ("run_hyper.py", "tune")])
def test_recbole_script_names_are_the_subcommands(tmp_path, script, command):
    shim = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    module = subprocess.run([sys.executable, "-m", "recbole_dien", command, "--help"], capture_output=True,
                            text=True, cwd=tmp_path, timeout=120)
    assert shim.returncode == module.returncode == 0, shim.stderr + module.stderr
    assert shim.stdout.startswith(f"usage: {script}") and module.stdout.startswith(f"usage: recbole-dien {command}")
    # the same parser under two names: all but the usage lines are equal
    assert shim.stdout.partition("\n\n")[2] == module.stdout.partition("\n\n")[2]


# what the README's commands write into the checkout by default: logs and checkpoints (run), search
# results (tune: saved/tune/), synthetic data (--out data/), the exported program and the heatmap
DEFAULT_OUTPUTS = ["log/DIN/DIN-ml-100k-now.log", "log_tensorboard/DIN-ml-100k-now/events", "saved/DIN-now.pth",
                   "saved/tune/DIN-ml-100k.result", "saved/tune/DIN-ml-100k.result.md",
                   "data/synthetic-1000000/synthetic-1000000.inter", "dien.pt2", "dien.pt2.json", "dien.onnx",
                   "attention.png"]


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout")
@pytest.mark.parametrize("path", DEFAULT_OUTPUTS)
def test_the_readme_commands_leave_the_checkout_clean(path):
    done = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT)
    assert done.returncode == 0, f"{path} is not ignored: git status would list it"


def test_tune_writes_its_results_under_saved():
    from recbole_dien.quick_start.tuning import default_output_file

    assert default_output_file("DIN", "ml-100k") in DEFAULT_OUTPUTS
