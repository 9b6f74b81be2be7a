"""Dynamic int8: the quantised linear layer against float, the layers chosen, the program traced."""
import pytest
import torch
import torch.nn as nn

from recbole_dien.serving import Scorer, export, quantize


def test_int8_linear_is_close_to_the_float_layer_and_quantises_each_row_on_its_own():
    torch.manual_seed(0)
    linear = nn.Linear(37, 11)
    layer = quantize.Int8Linear(linear)
    x = torch.randn(5, 3, 37)
    x[0, 0] *= 1000  # a large row does not coarsen the others' scales
    expected = linear(x)
    result = layer(x)
    assert result.shape == (5, 3, 11) and layer.weight_int8.dtype == torch.int8
    error = (result - expected).abs() / expected.abs().amax(-1, keepdim=True)
    assert error.max() < 0.02
    torch.testing.assert_close(result[1:], layer(x[1:]))


def test_rows_quantise_to_127_steps_with_zero_kept():
    values, scale = quantize.quantize_rows(torch.tensor([[0.0, 0.5, -1.0], [0.0, 0.0, 0.0]]))
    assert values.tolist() == [[0, 64, -127], [0, 0, 0]] and scale[0, 0] == pytest.approx(1 / 127)


def test_only_the_layers_the_model_calls_are_quantised(tiny_model):
    model, train_data, batch = tiny_model("DIEN")
    model.eval()
    dataset = train_data._dataset
    module = export.ServingModule(model, dataset)
    quantized = export.int8_module(module)
    # the activation unit's first layer is read as split weights, never called: it stays float
    assert "model.attention.input_layer" not in quantized.quantized_layers
    assert {"model.mlp.layers.0", "model.prediction"} <= set(quantized.quantized_layers)
    assert isinstance(quantized.model.prediction, quantize.Int8Linear)
    assert isinstance(module.model.prediction, nn.Linear)  # the float module is left as it was
    metadata = export.serving_metadata(module, dataset, "torch")
    rows = batch[:20]
    inputs = (rows[model.USER_ID], rows[model.ITEM_SEQ], rows[model.ITEM_SEQ_LEN], None,
              torch.randint(1, model.n_items, (20, 4)))
    plain = Scorer.from_program(module, metadata).score_ids(*inputs)
    eager = Scorer.from_program(quantized, metadata).score_ids(*inputs)
    assert 0 < (eager - plain).abs().max() < 0.05
    traced = Scorer.from_program(export.export_program(quantized).module(), metadata).score_ids(*inputs)
    torch.testing.assert_close(traced, eager)


def test_eager_int8_uses_torchs_quantised_layers_on_what_predict_calls(tiny_model):
    model, _, batch = tiny_model("DIN")
    model.eval()
    quantized = quantize.quantize_eager(model, (batch[:8],))
    assert "attention.input_layer" not in quantized.quantized_layers and "prediction" in quantized.quantized_layers
    assert type(quantized.prediction).__name__ == "Linear" and type(quantized.prediction) is not nn.Linear
    difference = (quantized.predict(batch) - model.predict(batch)).abs().max()
    assert 0 < difference < 0.05
