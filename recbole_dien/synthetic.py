"""python -m recbole_dien.synthetic: the synthetic data command under a short name
(``recbole-dien synthetic``; :mod:`recbole_dien.datasets.synthetic`, raw layouts in
:mod:`recbole_dien.datasets.synthetic_raw`)."""
import sys

from recbole_dien.datasets.synthetic import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m recbole_dien.synthetic"))
