"""RecBole's script name for ``recbole-dien tune``: hyper-parameter search; see ``python run_hyper.py --help``."""
import sys

from recbole_dien.cli import run_command

if __name__ == "__main__":
    sys.exit(run_command("tune", sys.argv[1:], prog="run_hyper.py"))
