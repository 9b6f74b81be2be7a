"""Export a trained DIN, DIEN or DSIN for serving: a ``torch.export`` program that needs torch
only, or an ONNX model for ONNX Runtime, TensorRT or Triton.

    recbole-dien export saved/DIEN-<date>.pth --output dien.pt2
    recbole-dien export saved/DIEN-<date>.pth --format onnx --output dien.onnx
    recbole-dien export saved/DIN-<date>.pth --format onnx --quantize int8 --output din-int8.onnx

``<output>.json`` beside the program holds what :class:`recbole_dien.serving.Scorer` needs to
score raw requests (the dataset's user and item tokens, histories, candidates never seen in
training): the id maps, every feature field's vocabulary, default and unknown token, the
feature tables, the history width.

The program computes click probabilities from plain tensors. It embeds the feature rows the
request brings, not the dataset's tables, so items and users that appeared after training are
scored from their side features:

    probabilities = program(item_seq, lengths, time_seq, candidates, *item_columns, *user_columns)

* ``item_columns``: one tensor per item field of the model (``item_fields`` in the JSON, in that
  order): the request's N item rows - [N] int64 for a token field, [N, S] int64 for a token_seq
  field (S fixed, zero-padded), [N] float32 for a float field; row 0 must be the padding row
  (all zeros). Each row is embedded once however often it occurs.
* ``item_seq`` [B, L] (int64): each user's history as rows of ``item_columns``, oldest first, 0
  after its ``lengths`` [B] (int64) real behaviours; ``L`` is the width of the dataset's item
  lists (``history_length`` in the JSON: ``MAX_ITEM_LIST_LENGTH``; DSIN's K x T);
* ``time_seq`` [B, L] (float64): the behaviours' timestamps in the dataset's units (DSIN cuts
  sessions with them; DIN and DIEN ignore them);
* ``candidates`` [B, C] (int64): rows of ``item_columns``;
* ``user_columns``: one tensor per user field (``user_fields``), B rows, one per user;
* output [B, C] (float32).

B, C and N are dynamic. Each token field of the program has one extra row, at the index the JSON
calls ``unknown``: the unknown-id vector for the id field (``--unknown-vector``: ``learned``, row
0 trained with ``unknown_id_dropout``; ``mean``, the mean id embedding; ``auto``, learned where the
model was trained with it) and for a side field the mean of its embedding over the dataset's
items (users), which is how a missing or unseen value is scored. The models compute with fixed
shapes here (``dense_logits``: padded histories, masks instead of packing), equal to ``predict``
(tests/serving/test_export.py). DIEN exports with ``gru_type`` AGRU or AUGRU.

``--quantize int8`` quantises the linear layers dynamically (int8 weights, activations quantised
per row at run time: ONNX Runtime's ``quantize_dynamic`` for ONNX, :mod:`.quantize` for
``torch.export``), measures the test split's AUC and the latency of one user's 100 candidates
with and without, and refuses when the AUC drops by more than 0.002 (``--force`` writes it anyway).
"""
import argparse
import contextlib
import copy
import json
import logging
import os
import statistics
import tempfile
import time
import warnings

import torch

from recbole_dien.serving import quantize as int8
from recbole_dien.serving.scorer import Scorer
from recbole_dien.utils.errors import RecBoleDienError, report

FORMATS = ("torch", "onnx")
UNKNOWN_VECTORS = ("auto", "learned", "mean")
MAX_INT8_AUC_DROP = 0.002


class ServingModule(torch.nn.Module):
    """The click probabilities of a copy of ``model`` (in eval mode, on the CPU) from the
    request's feature rows (see the module docstring), with one unknown row per token field;
    ``dataset``: the model's (its item lists' width is the program's history width)."""

    def __init__(self, model, dataset, unknown_vector="auto"):
        super().__init__()
        if not hasattr(model, "dense_logits"):
            raise RecBoleDienError(f"{type(model).__name__} cannot be exported: DIN, DIEN and DSIN can")
        refuse_behaviour_log(model)
        self.model = copy.deepcopy(model).cpu().eval()  # the caller's model stays as it is
        self.unknown_vector = resolve_unknown_vector(model, unknown_vector)
        self.item_fields = list(self.model.item_embedding.fields)
        self.user_fields = list(self.model.user_embedding.fields)
        self.history_length = dataset.field2seqlen[self.model.ITEM_SEQ]  # MAX_ITEM_LIST_LENGTH; DSIN's K x T
        self.defaults = {"item": add_unknown_rows(self.model.item_embedding, self.unknown_vector),
                         "user": add_unknown_rows(self.model.user_embedding, self.unknown_vector)}
        self.eval()

    @property
    def input_names(self):
        return (["item_seq", "lengths", "time_seq", "candidates"] + [f"item.{f}" for f in self.item_fields]
                + [f"user.{f}" for f in self.user_fields])

    def forward(self, item_seq, lengths, time_seq, candidates, *columns):
        items = dict(zip(self.item_fields, columns[:len(self.item_fields)]))
        users = dict(zip(self.user_fields, columns[len(self.item_fields):]))
        embeddings = self.model.item_embedding, self.model.user_embedding
        with embeddings[0].rows_of_request(items), embeddings[1].rows_of_request(users):
            user_rows = torch.arange(lengths.shape[0], device=lengths.device)
            return torch.sigmoid(self.model.dense_logits(user_rows, item_seq, lengths, time_seq, candidates))


def refuse_behaviour_log(model):
    """One line for a model trained on impressions with a behaviour log (recbole_dien.data.impressions):
    serving takes histories of item ids, such a model's are behaviours with fields of their own."""
    if getattr(model, "behaviour_log", False):
        raise RecBoleDienError(f"{type(model).__name__} was trained on impressions whose histories come from a "
                               "behaviour log (behavior_log_suffix); export, recommend and plot serve histories of "
                               "item ids only, so such a model is not served yet: score it with model.predict")


def resolve_unknown_vector(model, unknown_vector):
    """``auto`` -> ``learned`` where the model trained its unknown id (``unknown_id_dropout`` > 0), else ``mean``."""
    if unknown_vector not in UNKNOWN_VECTORS:
        raise RecBoleDienError(f"unknown vector must be one of {', '.join(UNKNOWN_VECTORS)}, not '{unknown_vector}'")
    trained = model.item_embedding.unknown_id_dropout > 0
    if unknown_vector == "learned" and not trained:
        raise RecBoleDienError("--unknown-vector learned needs a model trained with unknown_id_dropout > 0 "
                               "(row 0 of its id embedding is otherwise untrained); use mean")
    if unknown_vector == "auto":
        return "learned" if trained else "mean"
    return unknown_vector


@torch.no_grad()
def add_unknown_rows(embedding, unknown_vector):
    """Give every token field of ``embedding`` one more row, the field's unknown token: the id
    field's unknown vector (``learned``: row 0; ``mean``: the mean of the other rows); a side
    field's mean embedding over the table's rows (for a token_seq field, of its pooled
    embedding). Returns {field: default} - the unknown token (a token_seq field: [it]), or a
    float field's mean value."""
    defaults = {}
    for field in embedding.fields:
        column = embedding.column(field)[1:]                       # the table's rows; 0 is padding
        if field in embedding.float_fields:
            defaults[field] = float(column.float().mean()) if len(column) else 0.0
            continue
        old = embedding.embeddings[field]
        if field == embedding.id_field and unknown_vector == "learned":
            vector = old.weight[embedding.UNKNOWN_ID]
        elif len(column):
            vector = embedding.embed_field(field, column).mean(0)
        else:
            vector = old.weight.new_zeros(old.embedding_dim)
        new = torch.nn.Embedding(old.num_embeddings + 1, old.embedding_dim, padding_idx=old.padding_idx)
        new.weight.copy_(torch.cat([old.weight, vector.unsqueeze(0)]))
        embedding.embeddings[field] = new
        defaults[field] = [old.num_embeddings] if field in embedding.token_seq_fields else old.num_embeddings
    return defaults


def example_inputs(module, batch=2, candidates=3, rows=4):
    """Inputs of the shapes the program takes: ``rows`` item rows (the table's first ones, row 0
    the padding row), full histories of rows 1..rows-1, the table's first users."""
    items, users = module.model.item_embedding, module.model.user_embedding
    history_length = module.history_length
    item_ids = torch.arange(rows) % items.num_rows
    user_ids = (torch.arange(batch) + 1) % users.num_rows
    positions = torch.arange(history_length)
    return (((positions % (rows - 1)) + 1).repeat(batch, 1), torch.full((batch,), history_length, dtype=torch.long),
            positions.double().repeat(batch, 1), ((torch.arange(candidates) % (rows - 1)) + 1).repeat(batch, 1),
            *[items.column(f)[item_ids].clone() for f in module.item_fields],
            *[users.column(f)[user_ids].clone() for f in module.user_fields])


def dynamic_shapes(module):
    batch, candidates = torch.export.Dim("batch", min=1), torch.export.Dim("candidates", min=1)
    rows = torch.export.Dim("item_rows", min=1)
    columns = [{0: rows} for _ in module.item_fields] + [{0: batch} for _ in module.user_fields]
    return ({0: batch}, {0: batch}, {0: batch}, {0: batch, 1: candidates}, tuple(columns))  # *columns: one tuple


def export_program(module):
    """The ``torch.export`` program of a :class:`ServingModule`, B, C and N dynamic."""
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # torch.nn.GRU/LSTM re-assign their flat weights while traced; the program is unaffected
            warnings.filterwarnings("ignore", message="The tensor attributes .*_flat_weights")
            return torch.export.export(module, example_inputs(module),
                                       dynamic_shapes=dynamic_shapes(module))
    except ValueError as error:
        raise RecBoleDienError(str(error)) from None


def export_model(model, dataset, unknown_vector="auto"):
    """``torch.export`` program of ``model`` (a copy, in eval mode, on the CPU) on ``dataset``."""
    return export_program(ServingModule(model, dataset, unknown_vector))


def int8_module(module):
    """A copy of a :class:`ServingModule` with the linear layers it calls dynamically quantised
    (:func:`recbole_dien.serving.quantize.quantize_called_linear_layers`), for ``torch.export``."""
    return int8.quantize_called_linear_layers(module, example_inputs(module))


def exported_scorer(model, dataset, unknown_vector="auto"):
    """A :class:`~recbole_dien.serving.scorer.Scorer` of the ``torch.export`` program of ``model``,
    in memory (``scorer.score_ids(users, item_seq, lengths, time_seq, candidates)`` on the
    dataset's ids, ``scorer.score`` on raw requests)."""
    module = ServingModule(model, dataset, unknown_vector)
    metadata = serving_metadata(module, dataset, "torch")
    return Scorer.from_program(export_program(module).module(), metadata)


def _cumulative(x, dim, take_min):
    """``torch.cummin`` / ``torch.cummax`` (values and indices) from ops ONNX has: each position
    against every earlier one, [.., L, L] - fine for a history's L."""
    dim = dim % x.dim()
    moved = x.movedim(dim, -1)
    n = moved.shape[-1]
    positions = torch.arange(n, device=x.device)
    earlier = positions.unsqueeze(1) >= positions.unsqueeze(0)                    # [j, i]: i <= j
    info = torch.finfo(x.dtype) if x.dtype.is_floating_point else torch.iinfo(x.dtype)
    grid = moved.unsqueeze(-2).expand(*moved.shape[:-1], n, n).masked_fill(~earlier, info.max if take_min else info.min)
    values = grid.amin(-1) if take_min else grid.amax(-1)
    # torch's index: the last position holding the running extreme
    indices = torch.where((grid == values.unsqueeze(-1)) & earlier, positions, -1).amax(-1)
    return values.movedim(-1, dim), indices.movedim(-1, dim)


ONNX_DECOMPOSITIONS = {  # aten ops the ONNX exporter has no translation for (DSIN's session split)
    torch.ops.aten.cummin.default: lambda x, dim: _cumulative(x, dim, True),
    torch.ops.aten.cummax.default: lambda x, dim: _cumulative(x, dim, False),
}


@contextlib.contextmanager
def onnx_decompositions():
    """:data:`ONNX_DECOMPOSITIONS` in torch's decomposition table while the block runs: the ONNX
    exporter decomposes what it cannot translate with that table, in the one pass it makes anyway
    (a pass of our own would trace the program once more)."""
    table = torch._decomp.decomposition_table
    added = {op: fn for op, fn in ONNX_DECOMPOSITIONS.items() if op not in table}
    table.update(added)
    try:
        yield
    finally:
        for op in added:
            table.pop(op, None)


def export_onnx(program, module, path):
    """Write the ONNX model of ``program`` (:func:`export_program` of ``module``) to ``path``."""
    try:
        import onnx  # noqa: F401 - torch.onnx needs onnx and onnxscript
        import onnxscript  # noqa: F401
    except ImportError:
        raise RecBoleDienError("--format onnx needs onnx and onnxscript: pip install 'recbole-dien[serving]'") from None
    quiet = logging.getLogger("torch.onnx")
    level, quiet.level = quiet.level, logging.ERROR
    try:
        with warnings.catch_warnings(), onnx_decompositions():
            warnings.simplefilter("ignore")
            torch.onnx.export(program, (), str(path), dynamo=True, input_names=module.input_names,
                              output_names=["probabilities"], verbose=False, report=False)
    finally:
        quiet.level = level


def feature_metadata(embedding, defaults, dataset, id_field):
    """The JSON description of ``embedding``'s fields (in the program's order) and its table."""
    fields, table = [], {}
    for field in embedding.fields:
        kind = ("token" if field in embedding.token_fields else "token_seq" if field in embedding.token_seq_fields
                else "float")
        spec = {"name": field, "kind": kind, "default": defaults[field]}
        column = embedding.column(field)
        if kind != "float":
            spec["unknown"] = embedding.embeddings[field].num_embeddings - 1
            # the id field's vocabulary is the id map ("items", "users")
            spec["vocabulary"] = (None if field == id_field else
                                  {str(token): i for token, i in dataset.field2token_id[field].items() if i})
        if kind == "token_seq":
            spec["width"] = column.shape[1]
        fields.append(spec)
        table[field] = column.tolist()
    return fields, table


def serving_metadata(module, dataset, output_format, quantized=None):
    """Everything :class:`~recbole_dien.serving.scorer.Scorer` needs beside the program."""
    model = module.model
    items = {str(token): i for i, token in enumerate(dataset.field2id_token[dataset.iid_field]) if i}
    users = {str(token): i for i, token in enumerate(dataset.field2id_token[dataset.uid_field]) if i}
    item_fields, item_table = feature_metadata(model.item_embedding, module.defaults["item"], dataset, dataset.iid_field)
    user_fields, user_table = feature_metadata(model.user_embedding, module.defaults["user"], dataset, dataset.uid_field)
    return {"model": type(model).__name__, "format": output_format, "quantized": quantized,
            "inputs": module.input_names, "history_length": module.history_length,
            "uses_time": hasattr(model, "TIME_SEQ"), "sessions": session_settings(model),
            "unknown_vector": module.unknown_vector,
            "item_id_field": dataset.iid_field, "user_id_field": dataset.uid_field,
            "users": users, "items": items, "item_fields": item_fields, "user_fields": user_fields,
            "item_table": item_table, "user_table": user_table}


def session_settings(model):
    """DSIN's session knobs, with which the scorer picks a raw history's behaviours as DSIN's
    dataset does (the K most recent sessions, each its T most recent); None for DIN and DIEN."""
    if not hasattr(model, "session_gap"):
        return None
    return {"gap": model.session_gap, "max_sessions": model.max_sessions,
            "max_session_length": model.max_session_length}


def write_metadata(metadata, output):
    with open(f"{output}.json", "w", encoding="utf-8") as f:
        json.dump(metadata, f)


# --- int8: quality and latency, measured before writing --------------------------------------

def auc(scores, labels):
    """Area under the ROC curve (ties count half)."""
    from scipy.stats import rankdata

    positives = labels > 0.5
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if not n_pos or not n_neg:
        raise RecBoleDienError("the test split holds one label only: no AUC to compare int8 with; "
                               "use --force to write the int8 program unmeasured")
    ranks = torch.from_numpy(rankdata(scores.double().numpy())).double()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def test_rows(test_data):
    """A checkpoint's labelled test rows grouped by history: (users [G], item_seq [G, L], lengths,
    time_seq, candidates [G, C], labels [G, C], mask [G, C]) - each distinct (user, history) once
    with all its rows' items as candidates (a target and its sampled negatives share one)."""
    config, dataset = test_data.config, test_data._dataset
    uid, iid, label = dataset.uid_field, dataset.iid_field, config["LABEL_FIELD"]
    seq_field, length_field = iid + config["LIST_SUFFIX"], config["ITEM_LIST_LENGTH_FIELD"]
    time_seq_field = f"{config['TIME_FIELD']}{config['LIST_SUFFIX']}"
    parts = []
    for batch in test_data:
        interaction = batch[0] if isinstance(batch, tuple) else batch
        if label not in interaction:
            raise RecBoleDienError("the test split has no labels (full-sort protocol): no AUC to compare int8 with; "
                                   "use --force to write the int8 program unmeasured")
        times = interaction[time_seq_field] if time_seq_field in interaction.interaction \
            else torch.zeros(interaction[seq_field].shape)
        parts.append((interaction[uid], interaction[seq_field], interaction[length_field], times.double(),
                      interaction[iid], interaction[label].float()))
    users, item_seq, lengths, time_seq, items, labels = (torch.cat(column) for column in zip(*parts))
    real = torch.arange(item_seq.shape[1]) < lengths.unsqueeze(1)
    key = torch.cat([users.unsqueeze(1), lengths.unsqueeze(1), item_seq * real], dim=1)
    _, group = torch.unique(key, dim=0, return_inverse=True)
    order = torch.argsort(group, stable=True)
    counts = torch.bincount(group)
    first = torch.cumsum(counts, 0) - counts                                   # each group's first row in order
    slot = torch.arange(len(group)) - first[group[order]]                      # position within its group
    shape = (len(counts), int(counts.max()))
    candidates = torch.ones(shape, dtype=torch.long)
    grouped_labels, mask = torch.zeros(shape), torch.zeros(shape, dtype=torch.bool)
    candidates[group[order], slot] = items[order]
    grouped_labels[group[order], slot] = labels[order]
    mask[group[order], slot] = True
    head = order[first]                                                        # a row of each group
    return users[head], item_seq[head], lengths[head], time_seq[head], candidates, grouped_labels, mask


def test_auc(scorer, rows, batch_size=256):
    """The AUC of ``scorer`` over the rows of :func:`test_rows`."""
    users, item_seq, lengths, time_seq, candidates, labels, mask = rows
    scores = torch.cat([scorer.score_ids(users[s:s + batch_size], item_seq[s:s + batch_size], lengths[s:s + batch_size],
                                         time_seq[s:s + batch_size], candidates[s:s + batch_size])
                        for s in range(0, len(users), batch_size)])
    return auc(scores[mask], labels[mask])


LATENCY_CALLS = 200


def latency_ms(scorer, rows, candidates=100):
    """Median milliseconds of scoring one user's ``candidates`` items, over :data:`LATENCY_CALLS`
    calls after 10 warm-up calls."""
    users, item_seq, lengths, time_seq = (t[:1] for t in rows[:4])
    items = torch.randint(1, scorer.n_items, (1, candidates), generator=torch.Generator().manual_seed(0))
    times = []
    for call in range(LATENCY_CALLS + 10):
        start = time.perf_counter()
        scorer.score_ids(users, item_seq, lengths, time_seq, items)
        if call >= 10:
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def measure_int8(scorers, rows):
    """Test AUC and latency of the float and the int8 scorer."""
    plain, quantized = scorers
    return {"float_auc": test_auc(plain, rows), "int8_auc": test_auc(quantized, rows),
            "float_latency_ms": latency_ms(plain, rows), "int8_latency_ms": latency_ms(quantized, rows)}


def load_program(path, output_format, metadata):
    if output_format == "onnx":
        from recbole_dien.serving.scorer import _onnx_program

        return _onnx_program(path, metadata["inputs"])
    return torch.export.load(str(path)).module()


def export_checkpoint(checkpoint, output, output_format="torch", quantize=None, force=False,
                      unknown_vector="auto", log=print):
    """Load ``checkpoint``, export its model to ``output`` (``output_format`` torch or onnx) and
    the maps to ``output + '.json'``. With ``quantize='int8'``, the int8 program is compared with
    the float one on the test split first (AUC, latency; see the module docstring); ``force``
    writes it whatever the AUC costs. Returns the JSON metadata, the measurements under ``int8``."""
    from recbole_dien.quick_start import load_data_and_model

    if output_format not in FORMATS:
        raise RecBoleDienError(f"format must be one of {', '.join(FORMATS)}, not '{output_format}'")
    if quantize not in (None, "int8"):
        raise RecBoleDienError(f"--quantize takes int8, not '{quantize}'")
    config, model, dataset, _, _, test_data = load_data_and_model(checkpoint)
    module = ServingModule(model, dataset, unknown_vector)
    metadata = serving_metadata(module, dataset, output_format, quantize)
    if quantize is None:
        write_program(module, output_format, output)
        write_metadata(metadata, output)
        return metadata
    with tempfile.TemporaryDirectory() as folder:
        plain = os.path.join(folder, f"float.{'onnx' if output_format == 'onnx' else 'pt2'}")
        write_program(module, output_format, plain)
        if output_format == "onnx":
            int8.quantize_onnx(plain, output)
        else:
            write_program(int8_module(module), output_format, output)
        scorers = [Scorer.from_program(load_program(path, output_format, metadata), metadata)
                   for path in (plain, output)]
        try:
            measured = measure_int8(scorers, test_rows(test_data))
        except RecBoleDienError:  # nothing to measure with (no labels)
            if not force:
                os.remove(output)
                raise
            log("int8: written unmeasured (--force)")
            measured = {}
        if measured:
            drop = measured["float_auc"] - measured["int8_auc"]
            log(f"int8: test AUC {measured['float_auc']:.4f} -> {measured['int8_auc']:.4f} ({-drop:+.4f}); "
                f"one user x 100 candidates {measured['float_latency_ms']:.2f} ms -> "
                f"{measured['int8_latency_ms']:.2f} ms")
            if output_format == "torch" and measured["int8_latency_ms"] > measured["float_latency_ms"]:
                log("int8: slower than float here - torch.export can trace only torch._int_mm, which is slow on "
                    "CPUs; ONNX Runtime's int8 (--format onnx --quantize int8) is the fast one")
            if drop > MAX_INT8_AUC_DROP and not force:
                os.remove(output)
                raise RecBoleDienError(f"int8 costs {drop:.4f} test AUC (more than {MAX_INT8_AUC_DROP}): not written; "
                                       "--force writes it anyway")
    metadata["int8"] = measured
    write_metadata(metadata, output)
    return metadata


def write_program(module, output_format, output):
    program = export_program(module)
    if output_format == "onnx":
        export_onnx(program, module, output)
    else:
        torch.export.save(program, output)


def main(argv=None, prog="recbole-dien export"):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint written by run_recbole.py (saved/<Model>-<date>.pth)")
    parser.add_argument("--output", required=True, help="the program file to write (e.g. dien.pt2, dien.onnx)")
    parser.add_argument("--format", choices=FORMATS, default="torch",
                        help="torch: a torch.export program (default); onnx: an ONNX model")
    parser.add_argument("--quantize", choices=["int8"], help="dynamic int8 quantisation of the linear layers")
    parser.add_argument("--force", action="store_true",
                        help="with --quantize: write the int8 program even where it costs more than 0.002 test AUC "
                             "(or where the test split has no labels to measure it)")
    parser.add_argument("--unknown-vector", choices=UNKNOWN_VECTORS, default="auto",
                        help="the id part of items (users) never seen in training: learned (unknown_id_dropout), "
                             "mean (the mean id embedding), auto (learned where trained; default)")
    args = parser.parse_args(argv)
    try:
        export_checkpoint(args.checkpoint, args.output, args.format, args.quantize, args.force, args.unknown_vector)
    except RecBoleDienError as error:
        return report(parser, error)
    print(f"wrote {args.output} and {args.output}.json")
    return 0
