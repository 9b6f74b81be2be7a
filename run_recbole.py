"""RecBole's script name for ``recbole-dien run``: train, validate and test; see ``python run_recbole.py --help``."""
import sys

from recbole_dien.cli import run_command

if __name__ == "__main__":
    sys.exit(run_command("run", sys.argv[1:], prog="run_recbole.py"))
