"""``python -m recbole_dien``: the ``recbole-dien`` command (see :mod:`recbole_dien.cli`)."""
import sys

from recbole_dien.cli import main

sys.exit(main())
