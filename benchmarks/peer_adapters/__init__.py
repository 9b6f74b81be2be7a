"""The peer benchmark's parts (benchmarks/peers.py): the dumped rows every library trains on
(:mod:`.rows`, written by :mod:`.dump`), the training loop every run uses (:mod:`.loop`), and one
adapter per library that builds its DIN and DIEN and runs its training step (:mod:`.plugin` for
recbole-dien, :mod:`.deepctr`, :mod:`.fuxictr`, :mod:`.rechub`, :mod:`.nextrec`).

Only :mod:`.dump` and :mod:`.plugin` import RecBole; the rest needs numpy and torch alone, so that
it runs in the peers' own virtualenv, where RecBole is not installed.
"""

# library name (as benchmarks/peers.py and runs.csv spell it) -> (module, distribution on PyPI)
ADAPTERS = {
    "recbole-dien": ("plugin", "recbole-dien"),
    "deepctr-torch": ("deepctr", "deepctr-torch"),
    "fuxictr": ("fuxictr", "fuxictr"),
    "torch-rechub": ("rechub", "torch-rechub"),
    "nextrec": ("nextrec", "nextrec"),
}


def adapter_class(library):
    """The adapter class of ``library`` (imported only now: each needs its own library installed)."""
    import importlib

    module, _ = ADAPTERS[library]
    return importlib.import_module(f"{__name__}.{module}").Adapter
