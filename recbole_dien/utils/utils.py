"""Plugin-first model lookup, on either host (RecBole or hopwise, :mod:`recbole_dien.utils.hosts`)."""
import importlib
import os

from recbole_dien.utils.errors import UnknownModelError
from recbole_dien.utils.hosts import PLUGIN_MODELS, RECBOLE

# Spelling that always reaches RecBole's own class, e.g. ``recbole.DIN`` for the built-in DIN.
RECBOLE_PREFIX = RECBOLE.prefix
# RecBole's model packages under recbole.model, in the order its own get_model searches them
RECBOLE_MODEL_PACKAGES = ("general_recommender", "context_aware_recommender", "sequential_recommender",
                          "knowledge_aware_recommender", "exlib_recommender")
# hopwise's, in the order of its get_model
HOST_MODEL_PACKAGES = {"recbole": RECBOLE_MODEL_PACKAGES,
                       "hopwise": RECBOLE_MODEL_PACKAGES[:4] + ("knowledge_graph_embedding_recommender",
                                                                "path_language_modeling_recommender",
                                                                "exlib_recommender")}
# those that import optional libraries (lightgbm, xgboost) as soon as they are imported
NEEDS_OPTIONAL_LIBRARIES = ("exlib_recommender",)


def is_plugin_model(model_class):
    return model_class.__module__.split(".")[0] == "recbole_dien"


def _recbole_model(name, host=RECBOLE):
    # RecBole's own get_model imports exlib_recommender (and so lightgbm) for any name it does not
    # know, failing with an ImportError; look the module file up instead (hopwise's tree is RecBole's).
    models = host.module("model")
    for package in HOST_MODEL_PACKAGES[host.package]:
        for root in models.__path__:
            if os.path.isfile(os.path.join(root, package, f"{name.lower()}.py")):
                module = importlib.import_module(f"{host.package}.model.{package}.{name.lower()}")
                if hasattr(module, name):
                    return getattr(module, name)
    return None


def get_model(model_name, host=RECBOLE):
    """Return the model class for ``model_name`` on ``host`` (RecBole unless given).

    ``DIN`` (and the other names in :data:`PLUGIN_MODELS`) resolve to this package's model built on
    the host; ``recbole.<Name>`` (``hopwise.<Name>``) always resolves to the host's built-in class;
    any other name falls back to the host. A class is returned unchanged.
    """
    if isinstance(model_name, type):
        return model_name
    if model_name in PLUGIN_MODELS:
        return host.model(model_name)
    own_name = model_name[len(host.prefix):] if model_name.startswith(host.prefix) else model_name
    model_class = _recbole_model(own_name, host)
    if model_class is None:
        raise UnknownModelError(
            f"unknown model '{model_name}': not a recbole-dien model ({', '.join(PLUGIN_MODELS)}) "
            f"nor a {host.title} model (names are case-sensitive, e.g. GRU4Rec, SASRec; {host.title}'s own "
            f"DIN is spelled '{host.prefix}DIN')"
        )
    return model_class


def recbole_get_model_naming_plugin_models(get_model, host=RECBOLE):
    """RecBole's (or hopwise's, ``host``) ``get_model`` that, for a name RecBole has no model of, says in one line where it
    lives instead of failing on the import of an optional library: RecBole's own search imports
    ``exlib_recommender`` (and so ``lightgbm``) for any name it does not find earlier, so
    ``get_model('DSIN')`` ended in "No module named 'lightgbm'"."""
    def wrapper(model_name):
        if not isinstance(model_name, str) or _recbole_model(model_name, host) is not None:
            return get_model(model_name)
        if model_name in PLUGIN_MODELS:
            package = "recbole_dien" if host is RECBOLE else f"recbole_dien.{host.package}"
            raise UnknownModelError(
                f"{host.title} has no model '{model_name}': it is recbole-dien's ({PLUGIN_MODELS[model_name]}); get "
                f"it with {package}.get_model('{model_name}') or from {package} import {model_name}, and build "
                f"its config with {package}.Config")
        try:
            return get_model(model_name)
        except ImportError:  # RecBole's search reached exlib_recommender: the name is no model of RecBole's
            raise UnknownModelError(f"`model_name` [{model_name}] is not the name of an existing model "
                                    f"(neither {host.title}'s nor recbole-dien's: {', '.join(PLUGIN_MODELS)})") from None

    wrapper.names_plugin_models = True
    wrapper.__wrapped__ = get_model
    return wrapper
