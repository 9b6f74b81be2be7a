"""A regular (non-editable) install holds every module, props/, dataset_configs/ and hyper/, and its
command runs outside the checkout."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_regular_install_ships_props_and_dataset_configs(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "tests", "*.egg-info", "build",
                                                               "saved", "log*", "__pycache__", "benchmarks",
                                                               ".venv", ".ci-venv"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True, timeout=300)
    assert (target / "recbole_dien" / "props" / "DIN.yaml").is_file()
    assert (target / "recbole_dien" / "dataset_configs" / "ml-100k.yaml").is_file()
    assert (target / "recbole_dien" / "hyper" / "DIEN.hyper").is_file()
    probe = ("import recbole_dien.utils.resources as r; "
             "print(r.props_file('DIN')); print(r.dataset_config_file('ml-100k')); print(r.hyper_file('DSIN'))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(target)}, check=True)
    for line in done.stdout.split():
        assert line.startswith(str(target / "recbole_dien")), done.stdout
    shipped = {path.relative_to(target) for path in (target / "recbole_dien").rglob("*.py")}
    assert {path.relative_to(ROOT) for path in (ROOT / "recbole_dien").rglob("*.py")} <= shipped
    # the console script and python -m, from outside the checkout, with the packaged search spaces
    env = {**os.environ, "PYTHONPATH": str(target)}
    script = subprocess.run([str(target / "bin" / "recbole-dien"), "--help"], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=120)
    assert script.returncode == 0 and "tune" in script.stdout, script.stderr
    probe = ("import recbole_dien.quick_start.tuning as t; print(t._default_space('DIEN'))")
    space = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env,
                           check=True).stdout.strip()
    assert space == str(target / "recbole_dien" / "hyper" / "DIEN.hyper")
