"""Export for serving: torch.export and ONNX programs equal to predict; the command's formats, the
int8 check, and the one-line refusals."""
import glob
import json

import pytest
import torch

from recbole_dien import run
from recbole_dien.serving import Scorer, export
from recbole_dien.serving.scorer import _onnx_program


def serving_inputs(model, batch, candidates=None):
    """The scorer's internal-id inputs for a batch of rows: each row's history and, by default, its target."""
    time_seq = batch[model.TIME_SEQ] if hasattr(model, "TIME_SEQ") else None
    if candidates is None:
        candidates = batch[model.ITEM_ID].unsqueeze(1)
    return (batch[model.USER_ID], batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN], time_seq, candidates)


def assert_scores_equal_predict(scorer, model, rows):
    """The target of each row, and 5 random candidates per row (column c is predict with candidate c)."""
    torch.testing.assert_close(scorer.score_ids(*serving_inputs(model, rows)).squeeze(1), model.predict(rows),
                               rtol=1e-5, atol=1e-5)
    candidates = torch.randint(1, model.n_items, (len(rows), 5), generator=torch.Generator().manual_seed(0))
    scores = scorer.score_ids(*serving_inputs(model, rows, candidates))
    for column in range(5):
        rows[model.ITEM_ID] = candidates[:, column]
        torch.testing.assert_close(scores[:, column], model.predict(rows), rtol=1e-5, atol=1e-5)


SMALL_SESSIONS = {"max_sessions": 2, "max_session_length": 4}  # DSIN's histories: K x T = 8 behaviours


@pytest.mark.parametrize("model_name,settings,onnx", [
    ("DIN", {}, False), ("DIN", {"attention_softmax": True}, True), ("DIEN", {}, True),
    ("DIEN", {"augru_variant": "authors", "attention_type": "bilinear"}, True),
    ("DIEN", {"gru_type": "AGRU", "history_sum_features": True}, True), ("DSIN", SMALL_SESSIONS, False),
    ("DSIN", {"bilstm_merge": "sum", "session_attention": "mlp", **SMALL_SESSIONS}, True)])
def test_the_programs_equal_predict(tiny_model, tmp_path, model_name, settings, onnx):
    """torch.export and (in five settings, each model; DSIN's default in the command's test) ONNX
    Runtime's CPU provider, where onnxruntime is installed."""
    model, train_data, batch = tiny_model(model_name, **settings)
    model.eval()
    dataset = train_data._dataset
    module = export.ServingModule(model, dataset)
    metadata = export.serving_metadata(module, dataset, "torch")
    program = export.export_program(module)
    rows = batch[:37]  # a batch size the example inputs did not have
    assert_scores_equal_predict(Scorer.from_program(program.module(), metadata), model, rows)
    if onnx:
        pytest.importorskip("onnxruntime")
        export.export_onnx(program, module, tmp_path / "model.onnx")
        onnx_program = _onnx_program(tmp_path / "model.onnx", metadata["inputs"])
        assert_scores_equal_predict(Scorer.from_program(onnx_program, metadata), model, rows)


def test_cumulative_min_and_max_for_onnx_equal_torchs():
    values = torch.randint(0, 4, (3, 9, 5))  # ties on purpose: the index is the last one holding the extreme
    for ours, theirs in ((torch.ops.aten.cummin.default, torch.cummin), (torch.ops.aten.cummax.default, torch.cummax)):
        for dim in (1, -1, 0):
            result, expected = export.ONNX_DECOMPOSITIONS[ours](values, dim), theirs(values, dim)
            assert torch.equal(result[0], expected.values) and torch.equal(result[1], expected.indices)


@pytest.fixture
def dsin_checkpoint(tiny_config_dict):
    run("DSIN", "tiny", config_dict={**tiny_config_dict, **SMALL_SESSIONS}, cmd_args=[])
    (checkpoint,) = glob.glob(f"{tiny_config_dict['checkpoint_dir']}/DSIN-*.pth")
    return checkpoint


def test_the_command_writes_programs_and_maps_the_scorer_reads(dsin_checkpoint, tmp_path):
    from recbole_dien import load_data_and_model

    _, model, dataset, _, _, test_data = load_data_and_model(dsin_checkpoint)
    model.eval()
    rows = test_data._dataset[torch.arange(10)]
    formats = [("torch", "dsin.pt2")]
    try:
        import onnxruntime  # noqa: F401
        formats.append(("onnx", "dsin.onnx"))
    except ImportError:
        pass
    for output_format, name in formats:
        output = tmp_path / name
        assert export.main([dsin_checkpoint, "--format", output_format, "--output", str(output)]) == 0
        maps = json.loads((tmp_path / f"{name}.json").read_text())
        assert maps["format"] == output_format and maps["unknown_vector"] == "mean" and maps["uses_time"]
        assert maps["history_length"] == dataset.field2seqlen[model.ITEM_SEQ] and len(maps["items"]) == 60
        assert [spec["name"] for spec in maps["item_fields"]] == ["item_id", "year", "genre", "price"]
        torch.testing.assert_close(Scorer(str(output)).score_ids(*serving_inputs(model, rows)).squeeze(1),
                                   model.predict(rows), rtol=1e-5, atol=1e-5)


def test_int8_is_measured_and_refused_beyond_the_auc_budget(dsin_checkpoint, tmp_path, monkeypatch, capsys):
    output = tmp_path / "dsin-int8.pt2"
    monkeypatch.setattr(export, "LATENCY_CALLS", 5)
    monkeypatch.setattr(export, "MAX_INT8_AUC_DROP", -1.0)  # any int8 program now costs too much
    assert export.main([dsin_checkpoint, "--quantize", "int8", "--output", str(output)]) == 2
    captured = capsys.readouterr()
    assert "int8: test AUC" in captured.out and not output.exists()
    assert captured.err.strip().count("\n") == 0 and "more than -1.0): not written; --force writes it" in captured.err
    assert export.main([dsin_checkpoint, "--quantize", "int8", "--force", "--output", str(output)]) == 0
    measured = json.loads((tmp_path / "dsin-int8.pt2.json").read_text())["int8"]
    assert set(measured) == {"float_auc", "int8_auc", "float_latency_ms", "int8_latency_ms"}
    assert abs(measured["float_auc"] - measured["int8_auc"]) < 0.05
    assert 0.0 <= measured["int8_auc"] <= 1.0
    pytest.importorskip("onnxruntime")
    output = tmp_path / "dsin-int8.onnx"
    assert export.main([dsin_checkpoint, "--format", "onnx", "--quantize", "int8", "--force", "--output", str(output)]) == 0
    assert json.loads((tmp_path / "dsin-int8.onnx.json").read_text())["quantized"] == "int8"
    assert Scorer(str(output)).score_ids([1], [[1, 2]], [2], [[0.0, 1.0]], [[3, 4]]).shape == (1, 2)


def test_auc_counts_ties_half():
    assert export.auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0.0, 0.0, 1.0, 1.0])) == 0.75
    assert export.auc(torch.tensor([0.5, 0.5]), torch.tensor([0.0, 1.0])) == 0.5
    with pytest.raises(export.RecBoleDienError, match="one label only"):
        export.auc(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 1.0]))


def test_a_model_without_a_serving_path_is_one_line(tiny_pipeline):
    config, train_data, _, _ = tiny_pipeline("GRU4Rec", train_neg_sample_args=None, loss_type="CE")
    model = config.model_class(config, train_data._dataset)
    with pytest.raises(export.RecBoleDienError, match="GRU4Rec cannot be exported: DIN, DIEN and DSIN can"):
        export.export_model(model, train_data._dataset)
