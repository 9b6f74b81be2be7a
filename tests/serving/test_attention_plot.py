"""The attention heatmap command and the models' attention_weights."""
import glob
import sys

import pytest
import torch

from recbole_dien import run
from recbole_dien.serving import attention_plot
from recbole_dien.model.layers import sequence_mask


def trained_checkpoint(tiny_config_dict, model, **overrides):
    """Train ``model`` one epoch on the tiny dataset; the path of its checkpoint."""
    run(model, "tiny", config_dict={**tiny_config_dict, **overrides}, cmd_args=[])
    (path,) = glob.glob(f"{tiny_config_dict['checkpoint_dir']}/{model}-*.pth")
    return path


@pytest.mark.parametrize("model,softmax", [("DIN", False), ("DIEN", True)])
def test_behaviour_attention_heatmap(tiny_config_dict, tmp_path, model, softmax):
    path = trained_checkpoint(tiny_config_dict, model, attention_softmax=softmax)
    output = tmp_path / "attention.png"
    weights, probabilities = attention_plot.plot_attention(path, user="3", output=str(output))
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (name, matrix), = weights.items()
    assert matrix.shape == (5, 8) and probabilities.shape == (5,)  # target + 4 unrated, MAX_ITEM_LIST_LENGTH 8
    assert ((probabilities > 0) & (probabilities < 1)).all()
    if softmax:
        assert matrix.sum(1) == pytest.approx([1.0] * 5, abs=1e-5)


def test_given_items_and_session_heatmap_for_dsin(tiny_config_dict, tmp_path):
    path = trained_checkpoint(tiny_config_dict, "DSIN")
    weights, probabilities = attention_plot.plot_attention(path, user="5", items=["1", "2", "3"],
                                                           output=str(tmp_path / "dsin.png"))
    assert set(weights) == {"session interests", "interacting states"}
    for matrix in weights.values():
        assert matrix.shape == (3, 5) and matrix.sum(1) == pytest.approx([1.0] * 3, abs=1e-5)
    assert (tmp_path / "dsin.png").is_file()


def test_unknown_user_is_one_line_error(tiny_config_dict, capsys):
    path = trained_checkpoint(tiny_config_dict, "DIN")
    assert attention_plot.main([path, "--user", "no-such-user"]) == 2
    assert capsys.readouterr().err.strip() == ("recbole-dien plot: error: user 'no-such-user' is not in the dataset")


def test_missing_matplotlib_is_one_line_before_loading(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    never_read = tmp_path / "DIN-never-written.pth"  # the check comes before the checkpoint is opened
    assert attention_plot.main([str(never_read), "--user", "3"]) == 2
    assert capsys.readouterr().err.strip() == ("recbole-dien plot: error: drawing needs "
                                               "matplotlib: pip install 'recbole-dien[benchmark]'")


@pytest.mark.parametrize("model_name", ["DIN", "DIEN"])
def test_attention_weights_ignore_padding_and_what_lies_there(tiny_model, model_name):
    model, _, batch = tiny_model(model_name)
    model.eval()
    with torch.no_grad():
        (before,) = model.attention_weights(batch).values()
        seq = batch[model.ITEM_SEQ].clone()
        padding = ~sequence_mask(batch[model.ITEM_SEQ_LEN], seq.shape[1])
        seq[padding] = 1  # any item behind the padding mask
        batch[model.ITEM_SEQ] = seq
        (after,) = model.attention_weights(batch).values()
    assert (before[padding] == 0).all()
    torch.testing.assert_close(before, after)
