"""Train, validate and test a model on a dataset; see ``python run_recbole.py --help``."""
import sys

from recbole_dien.cli import main

if __name__ == "__main__":
    sys.exit(main())
