import pytest

from recbole_dien import DIN, get_model
from recbole_dien.utils.errors import UnknownModelError


def test_plugin_names_resolve_to_this_package():
    assert get_model("DIN") is DIN


def test_recbole_prefix_reaches_recbole_builtins():
    from recbole.model.sequential_recommender.din import DIN as RecBoleDIN

    assert get_model("recbole.DIN") is RecBoleDIN


def test_other_names_fall_back_to_recbole():
    assert get_model("GRU4Rec").__module__ == "recbole.model.sequential_recommender.gru4rec"
    assert get_model("recbole.SASRec").__name__ == "SASRec"


def test_a_class_is_returned_unchanged():
    assert get_model(DIN) is DIN


@pytest.mark.parametrize("name", ["Foo", "gru4rec", "recbole.Foo"])
def test_unknown_names_give_one_clear_error(name):
    with pytest.raises(UnknownModelError, match=f"unknown model '{name}'"):
        get_model(name)


@pytest.mark.parametrize("name", ["DSIN"])
def test_recboles_get_model_says_where_the_plugins_models_live(name):
    from recbole.utils import get_model as recbole_get_model

    with pytest.raises(UnknownModelError) as error:
        recbole_get_model(name)
    message = str(error.value)
    assert "\n" not in message and "lightgbm" not in message
    assert f"it is recbole-dien's (recbole_dien.model.{name.lower()})" in message
    assert f"recbole_dien.get_model('{name}')" in message


def test_recboles_get_model_still_finds_its_own_models():
    from recbole.model.sequential_recommender.din import DIN as RecBoleDIN
    from recbole.utils import get_model as recbole_get_model

    assert recbole_get_model("DIN") is RecBoleDIN
    with pytest.raises(ValueError, match=r"\[Foo\] is not the name of an existing model"):
        recbole_get_model("Foo")
