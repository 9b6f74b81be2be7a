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
