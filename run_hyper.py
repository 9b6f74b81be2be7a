"""Hyper-parameter search, RecBole-style, with this package's models first: see recbole_dien.tuning."""
import sys

from recbole_dien.tuning import main

if __name__ == "__main__":
    sys.exit(main())
