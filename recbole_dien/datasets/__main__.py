"""python -m recbole_dien.datasets NAME --raw DIR --out DIR: the converters' command (:mod:`.convert`)."""
import sys

from recbole_dien.datasets.convert import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m recbole_dien.datasets"))
