"""Plugin-first model lookup."""
import importlib
import os

import recbole.model

from recbole_dien.utils.errors import UnknownModelError

# Model name -> module of this package that defines it.
PLUGIN_MODELS = {
    "DIN": "recbole_dien.model.din",
    "DIEN": "recbole_dien.model.dien",
    "DSIN": "recbole_dien.model.dsin",
}
# Spelling that always reaches RecBole's own class, e.g. ``recbole.DIN`` for the built-in DIN.
RECBOLE_PREFIX = "recbole."
# RecBole's model packages under recbole.model, in the order its own get_model searches them
RECBOLE_MODEL_PACKAGES = ("general_recommender", "context_aware_recommender", "sequential_recommender",
                          "knowledge_aware_recommender", "exlib_recommender")
# those that import optional libraries (lightgbm, xgboost) as soon as they are imported
NEEDS_OPTIONAL_LIBRARIES = ("exlib_recommender",)


def is_plugin_model(model_class):
    return model_class.__module__.split(".")[0] == "recbole_dien"


def _recbole_model(name):
    # RecBole's own get_model imports exlib_recommender (and so lightgbm) for any name it does not
    # know, failing with an ImportError; look the module file up instead.
    for package in RECBOLE_MODEL_PACKAGES:
        for root in recbole.model.__path__:
            if os.path.isfile(os.path.join(root, package, f"{name.lower()}.py")):
                module = importlib.import_module(f"recbole.model.{package}.{name.lower()}")
                if hasattr(module, name):
                    return getattr(module, name)
    return None


def get_model(model_name):
    """Return the model class for ``model_name``.

    ``DIN`` (and the other names in :data:`PLUGIN_MODELS`) resolve to this package; ``recbole.<Name>``
    always resolves to RecBole's built-in class; any other name falls back to RecBole.
    A class is returned unchanged.
    """
    if isinstance(model_name, type):
        return model_name
    if model_name in PLUGIN_MODELS:
        return getattr(importlib.import_module(PLUGIN_MODELS[model_name]), model_name)
    recbole_name = model_name[len(RECBOLE_PREFIX):] if model_name.startswith(RECBOLE_PREFIX) else model_name
    model_class = _recbole_model(recbole_name)
    if model_class is None:
        raise UnknownModelError(
            f"unknown model '{model_name}': not a recbole-dien model ({', '.join(PLUGIN_MODELS)}) "
            f"nor a RecBole model (names are case-sensitive, e.g. GRU4Rec, SASRec; RecBole's own "
            f"DIN is spelled '{RECBOLE_PREFIX}DIN')"
        )
    return model_class


def recbole_get_model_naming_plugin_models(get_model):
    """RecBole's ``get_model`` that, for a name RecBole has no model of, says in one line where it
    lives instead of failing on the import of an optional library: RecBole's own search imports
    ``exlib_recommender`` (and so ``lightgbm``) for any name it does not find earlier, so
    ``get_model('DSIN')`` ended in "No module named 'lightgbm'"."""
    def wrapper(model_name):
        if not isinstance(model_name, str) or _recbole_model(model_name) is not None:
            return get_model(model_name)
        if model_name in PLUGIN_MODELS:
            raise UnknownModelError(
                f"RecBole has no model '{model_name}': it is recbole-dien's ({PLUGIN_MODELS[model_name]}); get it "
                f"with recbole_dien.get_model('{model_name}') or from recbole_dien import {model_name}, and build "
                "its config with recbole_dien.Config")
        try:
            return get_model(model_name)
        except ImportError:  # RecBole's search reached exlib_recommender: the name is no model of RecBole's
            raise UnknownModelError(f"`model_name` [{model_name}] is not the name of an existing model "
                                    f"(neither RecBole's nor recbole-dien's: {', '.join(PLUGIN_MODELS)})") from None

    wrapper.names_plugin_models = True
    wrapper.__wrapped__ = get_model
    return wrapper
