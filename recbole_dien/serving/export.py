"""Export a trained DIN, DIEN or DSIN for serving: a ``torch.export`` program that needs torch only.

    recbole-dien export saved/DIEN-<date>.pth --output dien.pt2

The program takes plain tensors and returns the click probability of each candidate:

    probabilities = torch.export.load("dien.pt2").module()(users, item_seq, lengths, time_seq, candidates)

* ``users`` [B] (int64): internal user ids; the user's side features are baked in;
* ``item_seq`` [B, L] (int64): internal item ids of each user's history, oldest first, zero
  after its ``lengths`` [B] (int64) real behaviours; ``L`` is the run's ``MAX_ITEM_LIST_LENGTH``;
* ``time_seq`` [B, L] (float32): the behaviours' timestamps in the dataset's units (DSIN cuts
  sessions with them; DIN and DIEN ignore them);
* ``candidates`` [B, C] (int64): internal item ids; the items' side features are baked in;
* output [B, C] (float32).

B and C are dynamic. ``<output>.json`` beside the program maps the dataset's user and item tokens
to the internal ids and records the history width. The models compute with fixed shapes here
(``dense_logits``: padded histories, masks instead of packing), equal to ``predict``
(tests/serving/test_export.py). DIEN exports with ``gru_type`` AGRU or AUGRU.
"""
import argparse
import copy
import json
import warnings

import torch

from recbole_dien.utils.errors import RecBoleDienError, report

INPUTS = ("users", "item_seq", "lengths", "time_seq", "candidates")


class ServingModule(torch.nn.Module):
    """The click probabilities of a model's ``dense_logits`` (see the module docstring)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, users, item_seq, lengths, time_seq, candidates):
        return torch.sigmoid(self.model.dense_logits(users, item_seq, lengths, time_seq, candidates))


def example_inputs(model, config, batch=2, candidates=3):
    """Inputs of the shapes the program takes (ids 1, histories of full length)."""
    length = config["MAX_ITEM_LIST_LENGTH"]
    return (torch.ones(batch, dtype=torch.long), torch.ones(batch, length, dtype=torch.long),
            torch.full((batch,), length, dtype=torch.long),
            torch.arange(length, dtype=torch.float).repeat(batch, 1), torch.ones(batch, candidates, dtype=torch.long))


def export_model(model, config):
    """``torch.export`` program of a copy of ``model`` (in eval mode, on the CPU) with dynamic B
    and C."""
    if not hasattr(model, "dense_logits"):
        raise RecBoleDienError(f"{type(model).__name__} cannot be exported: DIN, DIEN and DSIN can")
    model = copy.deepcopy(model).cpu().eval()  # the caller's model stays as it is
    for embedding in (model.item_embedding, model.user_embedding):
        embedding.deduplicate = False  # torch.unique has a data-dependent shape
    batch, candidates = torch.export.Dim("batch", min=1), torch.export.Dim("candidates", min=1)
    shapes = {"users": {0: batch}, "item_seq": {0: batch}, "lengths": {0: batch}, "time_seq": {0: batch},
              "candidates": {0: batch, 1: candidates}}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # torch.nn.GRU/LSTM re-assign their flat weights while traced; the program is unaffected
            warnings.filterwarnings("ignore", message="The tensor attributes .*_flat_weights")
            return torch.export.export(ServingModule(model), example_inputs(model, config), dynamic_shapes=shapes)
    except ValueError as error:
        raise RecBoleDienError(str(error)) from None


def token_maps(dataset):
    return {"users": {str(token): i for i, token in enumerate(dataset.field2id_token[dataset.uid_field]) if i},
            "items": {str(token): i for i, token in enumerate(dataset.field2id_token[dataset.iid_field]) if i}}


def export_checkpoint(checkpoint, output):
    """Load ``checkpoint``, export its model to ``output`` and the id maps to ``output + '.json'``."""
    from recbole_dien.quick_start import load_data_and_model

    config, model, dataset, *_ = load_data_and_model(checkpoint)
    program = export_model(model, config)
    torch.export.save(program, output)
    with open(f"{output}.json", "w") as f:
        json.dump({"model": config["model"], "inputs": list(INPUTS), "history_length": config["MAX_ITEM_LIST_LENGTH"],
                   **token_maps(dataset)}, f)
    return program


def main(argv=None, prog="recbole-dien export"):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint written by run_recbole.py (saved/<Model>-<date>.pth)")
    parser.add_argument("--output", required=True, help="the program file to write (e.g. dien.pt2)")
    args = parser.parse_args(argv)
    try:
        export_checkpoint(args.checkpoint, args.output)
    except RecBoleDienError as error:
        return report(parser, error)
    print(f"wrote {args.output} and {args.output}.json")
    return 0

