"""The three models, one host-neutral class each (:mod:`.din`, :mod:`.dien`, :mod:`.dsin`); the names
here are the classes built on RecBole (``recbole_dien.hopwise`` has hopwise's)."""
MODELS = ("DIEN", "DIN", "DSIN")

__all__ = list(MODELS)


def __getattr__(name):
    # built on first use, so that importing the host-neutral model modules never imports RecBole
    if name in MODELS:
        from recbole_dien.utils.hosts import RECBOLE

        return RECBOLE.model(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
