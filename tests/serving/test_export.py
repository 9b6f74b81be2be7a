"""Export for serving: a torch.export program equal to predict, loadable with torch alone."""
import glob
import json
import subprocess
import sys

import pytest
import torch

from recbole_dien import run
from recbole_dien.serving import export


def serving_inputs(model, batch, candidates=None):
    """The program's inputs for a batch of rows: each row's history and, by default, its target."""
    time_seq = batch[model.TIME_SEQ] if hasattr(model, "TIME_SEQ") else torch.zeros(batch[model.ITEM_SEQ].shape)
    if candidates is None:
        candidates = batch[model.ITEM_ID].unsqueeze(1)
    return (batch[model.USER_ID], batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN], time_seq.float(), candidates)


@pytest.mark.parametrize("model_name,settings", [("DIN", {}), ("DIN", {"attention_softmax": True}), ("DIEN", {}),
                                                 ("DIEN", {"gru_type": "AGRU", "history_sum_features": True}),
                                                 ("DSIN", {}), ("DSIN", {"bilstm_merge": "sum",
                                                                         "session_attention": "mlp"})])
def test_the_exported_program_equals_predict(tiny_model, model_name, settings):
    model, train_data, batch = tiny_model(model_name, **settings)
    model.eval()
    program = export.export_model(model, train_data.config).module()
    rows = batch[:37]  # a batch size the example inputs did not have
    expected = model.predict(rows)
    torch.testing.assert_close(program(*serving_inputs(model, rows)).squeeze(1), expected, rtol=1e-5, atol=1e-5)
    # several candidates per user: column c is predict with candidate c
    candidates = torch.randint(1, model.n_items, (len(rows), 5))
    scores = program(*serving_inputs(model, rows, candidates))
    for column in range(5):
        rows[model.ITEM_ID] = candidates[:, column]
        torch.testing.assert_close(scores[:, column], model.predict(rows), rtol=1e-5, atol=1e-5)


def test_the_command_writes_a_program_that_needs_torch_only(tiny_config_dict, tmp_path):
    run("DSIN", "tiny", config_dict=tiny_config_dict, cmd_args=[])
    (checkpoint,) = glob.glob(f"{tiny_config_dict['checkpoint_dir']}/DSIN-*.pth")
    output = tmp_path / "dsin.pt2"
    assert export.main([checkpoint, "--output", str(output)]) == 0
    maps = json.loads((tmp_path / "dsin.pt2.json").read_text())
    assert maps["history_length"] == 8 and maps["users"]["3"] >= 1 and len(maps["items"]) == 60

    from recbole_dien import load_data_and_model

    _, model, _, _, _, test_data = load_data_and_model(checkpoint)
    rows = test_data._dataset[torch.arange(10)]
    inputs = serving_inputs(model, rows)
    torch.save(inputs, tmp_path / "inputs.pt")
    script = (
        "import sys\n"
        "for blocked in ('recbole', 'recbole_dien'):\n"
        "    sys.modules[blocked] = None  # importing either now fails\n"
        "import torch\n"
        f"program = torch.export.load({str(output)!r}).module()\n"
        f"inputs = torch.load({str(tmp_path / 'inputs.pt')!r})\n"
        f"torch.save(program(*inputs), {str(tmp_path / 'out.pt')!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    model.eval()
    torch.testing.assert_close(torch.load(tmp_path / "out.pt").squeeze(1), model.predict(rows), rtol=1e-5, atol=1e-5)


def test_a_model_without_a_serving_path_is_one_line(tiny_pipeline):
    config, train_data, _, _ = tiny_pipeline("GRU4Rec", train_neg_sample_args=None, loss_type="CE")
    model = config.model_class(config, train_data._dataset)
    with pytest.raises(export.RecBoleDienError, match="GRU4Rec cannot be exported: DIN, DIEN and DSIN can"):
        export.export_model(model, config)
