"""Click probabilities for raw requests from an exported program: :class:`Scorer`.

    from recbole_dien.serving import Scorer

    scorer = Scorer("din.pt2")                       # or "din.onnx"; reads din.pt2.json beside it
    scores = scorer.score([Request(user="196", history=["242", "302"], times=[881250949, 881251949],
                                   candidates=["51", "346", "new-film"],
                                   item_features={"new-film": {"class": ["Drama"], "release_year": "1998"}})])
    scores.probabilities                             # [1, 3]

Needs torch alone for a ``torch.export`` program (``.pt2``) and onnxruntime with numpy for an ONNX
one; nothing here imports RecBole or the rest of recbole_dien, so this file also works copied
on its own beside the program.

Requests carry the dataset's tokens; what the export has never seen is handled, and counted:

* a history item the export does not know is dropped from the history (with its time);
  ``Scores.dropped_history`` counts them per request; the most recent ``history_length`` known
  behaviours are kept (DSIN: those of the K most recent sessions, each its T most recent, as its
  dataset gives them in training);
* a user the export does not know (or ``user=None``) is scored from the history alone: the
  profile part takes, per user field, the side features the request gives in ``user_features``
  and otherwise the default of the export - for a token field the mean of its embedding over
  the training users (the average user), for a float field the mean value; the user id part
  (``user_id_feature``) is the unknown-id vector;
* a candidate the export does not know is scored from the side features in ``item_features``
  (a field left out or a token the export has not seen takes the field's default, as for users;
  unseen tokens of a token_seq field are dropped), with the id part replaced by the unknown-item
  vector of the export (``unknown_vector`` in the JSON: ``learned``, row 0 of the id embedding
  trained with ``unknown_id_dropout``, or ``mean``, the mean id embedding); ``Scores.unknown_candidates``
  counts them.

:meth:`Scorer.score_ids` takes the dataset's internal ids instead (the tensors RecBole holds).
Every input is checked first; a bad one raises :class:`ScoringError`, one line naming the field.
Scoring runs in inference mode (no autograd).
"""
import json
import math
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import torch

# (user, candidate) pairs per call of the program (None: the whole batch in one call). Smaller calls
# were measured not to pay (DIEN's ONNX program, 2026-12-07: 1,000 pairs a call 57,101 pairs/s, the
# whole 10,000 67,843; docs/commands.md): the programs already score attention in cache-sized blocks
PAIRS_PER_CALL = None


class ScoringError(ValueError):
    """A request the scorer cannot score: the message names the field and what it must be."""


@dataclass
class Request:
    """One user's request: tokens as in the dataset's atomic files, the history oldest first."""

    user: Optional[str]
    history: Sequence = ()
    candidates: Sequence = ()
    times: Optional[Sequence] = None                    # one per history item; required where the model uses time
    user_features: Optional[Mapping] = None             # {field: value} for a user the export does not know
    item_features: Optional[Mapping] = None             # {candidate token: {field: value}} for candidates it does not know


@dataclass
class Scores:
    """``probabilities`` [B, C]: row b's first ``len(requests[b].candidates)`` entries are its
    candidates' click probabilities (NaN after them, where requests have fewer candidates)."""

    probabilities: torch.Tensor
    dropped_history: list = field(default_factory=list)      # per request: unknown history items dropped
    unknown_user: list = field(default_factory=list)         # per request: scored with the default profile
    unknown_candidates: list = field(default_factory=list)   # per request: candidates scored from side features


class _Table:
    """One side of the export's feature tables (items or users): the fields in the program's order,
    each with its kind, vocabulary, unknown token and default, and the stored rows."""

    def __init__(self, fields, rows, id_map, id_field):
        self.fields = fields                                   # [{"name", "kind", "unknown", "default", ...}]
        self.id_map = id_map                                   # token -> internal id (the id field's vocabulary)
        self.id_field = id_field
        self.columns = {}
        for spec in fields:
            dtype = torch.float32 if spec["kind"] == "float" else torch.long
            self.columns[spec["name"]] = torch.tensor(rows[spec["name"]], dtype=dtype)

    def default_row(self):
        return {spec["name"]: spec["default"] for spec in self.fields}

    def encode(self, spec, value, context):
        """A raw feature value as the program takes it; unseen tokens take the field's unknown token."""
        if spec["kind"] == "float":
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ScoringError(f"{context}: {spec['name']} is a float field, not {value!r}") from None
            if not math.isfinite(number):
                raise ScoringError(f"{context}: {spec['name']} must be a finite number, not {value!r}")
            return number
        vocabulary = spec["vocabulary"]
        if spec["kind"] == "token":
            return vocabulary.get(str(value), spec["unknown"])
        tokens = value.split() if isinstance(value, str) else list(value)
        known = [vocabulary[str(t)] for t in tokens if str(t) in vocabulary][:spec["width"]]
        return known or spec["default"]

    def rows_of_features(self, features, context):
        """The row of an item (user) unknown to the export: the id part unknown, side features from
        ``features`` (missing ones take their defaults)."""
        if features is not None and not isinstance(features, Mapping):
            raise ScoringError(f"{context}: a mapping of field names to values, not {type(features).__name__}")
        features = dict(features or {})
        row = self.default_row()
        unknown_fields = [name for name in features if name not in row or name == self.id_field]
        if unknown_fields:
            names = ", ".join(spec["name"] for spec in self.fields if spec["name"] != self.id_field) or "none"
            raise ScoringError(f"{context}: no side feature '{unknown_fields[0]}' in the export (fields: {names})")
        for spec in self.fields:
            if spec["name"] in features:
                row[spec["name"]] = self.encode(spec, features[spec["name"]], context)
        return row

    def gather(self, ids, extra_rows=()):
        """The columns of the stored rows ``ids`` [N], then of ``extra_rows`` (dicts of encoded
        values), in the program's order."""
        columns = []
        for spec in self.fields:
            values = self.columns[spec["name"]].index_select(0, ids)
            if extra_rows:
                values = torch.cat([values, torch.stack([self.as_row(spec, row[spec["name"]]) for row in extra_rows])])
            columns.append(values)
        return columns

    def replace_rows(self, columns, where, rows):
        """``columns`` with the rows at mask ``where`` replaced by ``rows`` (dicts of encoded values)."""
        for column, spec in zip(columns, self.fields):
            column[where] = torch.stack([self.as_row(spec, row[spec["name"]]) for row in rows])
        return columns

    def as_row(self, spec, value):
        """An encoded value as one row of its column."""
        column = self.columns[spec["name"]]
        if spec["kind"] != "token_seq":
            return torch.tensor(value, dtype=column.dtype)
        padded = torch.zeros(column.shape[1], dtype=torch.long)
        padded[:len(value)] = torch.tensor(value, dtype=torch.long)
        return padded


class Scorer:
    """Scores requests with an exported DIN, DIEN or DSIN (``recbole-dien export``).

    ``path``: the program, ``.pt2`` (``torch.export``) or ``.onnx`` (ONNX Runtime, CPU provider);
    its maps are read from ``path + ".json"``. See the module docstring for requests."""

    def __init__(self, path, threads=None, pairs_per_call=PAIRS_PER_CALL):
        with open(f"{path}.json", encoding="utf-8") as f:
            metadata = json.load(f)
        if str(path).endswith(".onnx"):
            program = _onnx_program(path, metadata["inputs"], threads)
        else:
            program = torch.export.load(str(path)).module()
        self._setup(program, metadata, pairs_per_call)

    @classmethod
    def from_program(cls, program, metadata, pairs_per_call=PAIRS_PER_CALL):
        """A scorer of an in-memory ``program`` (a callable on the program's inputs) with its maps."""
        scorer = cls.__new__(cls)
        scorer._setup(program, metadata, pairs_per_call)
        return scorer

    def _setup(self, program, metadata, pairs_per_call=PAIRS_PER_CALL):
        if pairs_per_call is not None and (not isinstance(pairs_per_call, int) or isinstance(pairs_per_call, bool)
                                           or pairs_per_call < 1):
            raise ScoringError(f"pairs_per_call: {pairs_per_call!r}; give a positive whole number of "
                               "(user, candidate) pairs per call of the program")
        self.program = program
        self.pairs_per_call = pairs_per_call
        self.metadata = metadata
        self.model = metadata["model"]
        self.history_length = metadata["history_length"]
        self.uses_time = metadata["uses_time"]
        item_id = metadata["item_id_field"]
        user_id = metadata["user_id_field"]
        self.items = _Table(metadata["item_fields"], metadata["item_table"], metadata["items"], item_id)
        self.users = _Table(metadata["user_fields"], metadata["user_table"], metadata["users"], user_id)
        self.n_items = len(metadata["items"]) + 1                       # id 0 is the padding item
        self.n_users = len(metadata["users"]) + 1                       # id 0: a user the export does not know

    # --- raw requests ---------------------------------------------------------------------------

    def score(self, requests):
        """Click probabilities of each request's candidates: :class:`Scores`."""
        if isinstance(requests, Request):
            requests = [requests]
        if not requests:
            raise ScoringError("requests: give at least one request")
        length = self.history_length
        users, histories, times, candidates, unknown_rows, result = [], [], [], [], [], Scores(None)
        user_rows = []
        for number, request in enumerate(requests):
            if not isinstance(request, Request):
                raise ScoringError(f"request {number}: a recbole_dien.serving.Request, not {type(request).__name__}")
            context = f"request {number}"
            user = self.users.id_map.get(str(request.user), 0) if request.user is not None else 0
            result.unknown_user.append(user == 0)
            users.append(user)
            user_rows.append(self.users.rows_of_features(request.user_features, f"{context}: user_features")
                             if user == 0 else None)
            history = _sequence(request.history, f"{context}: history")
            stamps = self._times_of(request, history, context)
            known = [(self.items.id_map.get(str(item)), stamp) for item, stamp in zip(history, stamps)]
            kept = self._window([(item, stamp) for item, stamp in known if item is not None])
            result.dropped_history.append(sum(item is None for item, _ in known))
            histories.append([item for item, _ in kept])
            times.append([stamp for _, stamp in kept])
            wanted = _sequence(request.candidates, f"{context}: candidates")
            if not wanted:
                raise ScoringError(f"{context}: candidates is empty; give at least one item to score")
            features = request.item_features or {}
            if not isinstance(features, Mapping):
                raise ScoringError(f"{context}: item_features must map candidate tokens to {{field: value}}")
            row = []
            for item in wanted:
                known_id = self.items.id_map.get(str(item))
                if known_id is None:
                    unknown_rows.append(self.items.rows_of_features(
                        features.get(str(item), features.get(item)), f"{context}: item_features['{item}']"))
                    row.append(-len(unknown_rows))                      # the k-th unknown row: -k
                else:
                    row.append(known_id)
            result.unknown_candidates.append(sum(i < 0 for i in row))
            candidates.append(row)
        batch, width = len(requests), max(len(row) for row in candidates)
        item_seq = torch.zeros(batch, length, dtype=torch.long)
        time_seq = torch.zeros(batch, length, dtype=torch.float64)
        lengths = torch.tensor([len(h) for h in histories], dtype=torch.long)
        for b, (history, stamps) in enumerate(zip(histories, times)):
            item_seq[b, :len(history)] = torch.tensor(history, dtype=torch.long)
            time_seq[b, :len(stamps)] = torch.tensor(stamps, dtype=torch.float64)
        # a request with fewer candidates repeats its first one; those columns become NaN
        padded = torch.tensor([row + [row[0]] * (width - len(row)) for row in candidates], dtype=torch.long)
        user_ids = torch.tensor(users, dtype=torch.long)
        probabilities = self._score_internal(user_ids, item_seq, lengths, time_seq, padded, unknown_rows,
                                             [row for row in user_rows if row is not None])
        for b, row in enumerate(candidates):
            probabilities[b, len(row):] = float("nan")
        result.probabilities = probabilities
        return result

    def _window(self, behaviours):
        """The behaviours (item, time) the program sees: the most recent ``history_length``; for
        DSIN, as its dataset picks them, the K most recent sessions, each its T most recent."""
        sessions = self.metadata.get("sessions")
        if sessions and behaviours:
            cuts = [0] + [i for i in range(1, len(behaviours))
                          if behaviours[i][1] - behaviours[i - 1][1] > sessions["gap"]] + [len(behaviours)]
            spans = list(zip(cuts[:-1], cuts[1:]))[-sessions["max_sessions"]:]
            behaviours = [b for start, end in spans
                          for b in behaviours[max(start, end - sessions["max_session_length"]):end]]
        return behaviours[-self.history_length:] if self.history_length else []

    def _times_of(self, request, history, context):
        if request.times is None:
            if self.uses_time and history:
                raise ScoringError(f"{context}: times: {self.model} cuts sessions by time; give one timestamp "
                                   "per history item")
            return [0.0] * len(history)
        stamps = _sequence(request.times, f"{context}: times")
        if len(stamps) != len(history):
            raise ScoringError(f"{context}: times has {len(stamps)} values for {len(history)} history items")
        try:
            stamps = [float(t) for t in stamps]
        except (TypeError, ValueError):
            raise ScoringError(f"{context}: times must be numbers (the dataset's time units)") from None
        if not all(math.isfinite(t) for t in stamps):
            raise ScoringError(f"{context}: times must be finite numbers")
        if self.uses_time and any(later < earlier for earlier, later in zip(stamps, stamps[1:])):
            raise ScoringError(f"{context}: times must not decrease (the history oldest first)")
        return stamps

    # --- internal ids ---------------------------------------------------------------------------

    def score_ids(self, users, item_seq, lengths, time_seq, candidates):
        """Click probabilities [B, C] from the dataset's internal ids: ``users`` [B] (0: a user the
        export does not know, scored with the default profile), ``item_seq`` [B, W] (W <= the
        export's ``history_length``; ids after each row's ``lengths`` [B] are ignored),
        ``time_seq`` [B, W] (or None where the model does not use time), ``candidates`` [B, C]."""
        users = _tensor(users, "users", 1, integer=True)
        item_seq = _tensor(item_seq, "item_seq", 2, integer=True)
        lengths = _tensor(lengths, "lengths", 1, integer=True)
        candidates = _tensor(candidates, "candidates", 2, integer=True)
        batch, width = item_seq.shape
        for name, value in (("users", users), ("lengths", lengths), ("candidates", candidates)):
            if value.shape[0] != batch:
                raise ScoringError(f"{name}: {value.shape[0]} rows, but item_seq has {batch} (one row per user)")
        if width > self.history_length:
            raise ScoringError(f"item_seq: {width} positions, more than the export's history_length "
                               f"{self.history_length}; keep each history's most recent {self.history_length}")
        if time_seq is None:
            if self.uses_time:
                raise ScoringError(f"time_seq: {self.model} cuts sessions by time; give the behaviours' timestamps")
            time_seq = torch.zeros(batch, width)
        time_seq = _tensor(time_seq, "time_seq", 2, integer=False)
        if time_seq.shape != item_seq.shape:
            raise ScoringError(f"time_seq: shape {tuple(time_seq.shape)}, must be item_seq's {tuple(item_seq.shape)}")
        if candidates.shape[1] == 0 or batch == 0:
            raise ScoringError("candidates: give at least one user and one candidate per user")
        _check_range(lengths, "lengths", 0, width, "each history's real behaviours, at most item_seq's width")
        _check_range(users, "users", 0, self.n_users - 1, "the export's user ids; 0 for a user it does not know")
        real = torch.arange(width) < lengths.unsqueeze(1)
        _check_range(item_seq[real], "item_seq", 1, self.n_items - 1,
                     "the export's item ids within each row's lengths")
        _check_range(candidates, "candidates", 1, self.n_items - 1, "the export's item ids")
        if not torch.isfinite(time_seq[real]).all():
            raise ScoringError("time_seq: must be finite within each row's lengths")
        if self.uses_time and ((time_seq.diff(dim=1) < 0) & real[:, 1:]).any():
            raise ScoringError("time_seq: must not decrease within each row's lengths (histories oldest first)")
        item_seq = torch.nn.functional.pad(item_seq * real, (0, self.history_length - width))
        time_seq = torch.nn.functional.pad(time_seq.double() * real, (0, self.history_length - width))
        return self._score_internal(users, item_seq, lengths, time_seq, candidates)

    # --- the program ----------------------------------------------------------------------------

    def _score_internal(self, users, item_seq, lengths, time_seq, candidates, unknown_items=(), unknown_users=()):
        """Validated internal ids -> probabilities; candidates < 0 are ``unknown_items`` (-1 the
        first), users 0 take the rows ``unknown_users`` in order (default rows when none are given)."""
        real = torch.arange(item_seq.shape[1]) < lengths.unsqueeze(1)
        known = candidates[candidates > 0]
        distinct = torch.unique(torch.cat([item_seq[real], known]))           # sorted, all >= 1
        # the request's item rows: 0 the padding row, then the distinct known items, then the unknown ones
        item_columns = self.items.gather(torch.cat([torch.zeros(1, dtype=torch.long), distinct]), list(unknown_items))
        seq_rows = torch.where(real, torch.searchsorted(distinct, item_seq) + 1, 0)
        candidate_rows = torch.where(candidates > 0, torch.searchsorted(distinct, candidates.clamp(min=1)) + 1,
                                     len(distinct) + (-candidates))
        user_columns = self.users.gather(users)
        new_users = users == 0
        if new_users.any():
            rows = list(unknown_users) or [self.users.default_row()] * int(new_users.sum())
            self.users.replace_rows(user_columns, new_users, rows)
        # users in slices of about pairs_per_call (user, candidate) pairs
        users_per_call = (len(users) if self.pairs_per_call is None
                          else max(1, self.pairs_per_call // candidates.shape[1]))
        outputs = []
        with torch.inference_mode():
            for part in torch.arange(len(users)).split(users_per_call):
                outputs.append(self.program(seq_rows[part], lengths[part], time_seq[part], candidate_rows[part],
                                            *item_columns, *(column[part] for column in user_columns)))
        return torch.cat(outputs)  # a plain tensor: an inference-mode one refuses in-place changes after


def _onnx_program(path, input_names, threads=None):
    """A callable running the ONNX file in ONNX Runtime's CPU provider on torch tensors, given in
    the order of ``input_names`` (the program's inputs; an ONNX graph leaves out those it does not use)."""
    try:
        import onnxruntime
    except ImportError:
        raise ScoringError("an .onnx program needs onnxruntime: pip install 'recbole-dien[serving]'") from None
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    used = {i.name for i in session.get_inputs()}

    def run(*inputs):
        feed = {name: x.numpy() for name, x in zip(input_names, inputs) if name in used}
        return torch.from_numpy(session.run(None, feed)[0])

    return run


def _sequence(value, name):
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise ScoringError(f"{name}: a list of tokens, not {type(value).__name__}")
    return list(value)


def _tensor(value, name, dims, integer):
    try:
        tensor = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise ScoringError(f"{name}: not a tensor of numbers") from None
    if tensor.dim() != dims:
        raise ScoringError(f"{name}: {tensor.dim()}-D tensor of shape {tuple(tensor.shape)}, must be {dims}-D")
    if tensor.dtype == torch.bool or (integer and tensor.is_floating_point()) or tensor.is_complex():
        raise ScoringError(f"{name}: dtype {tensor.dtype}, must be {'an integer' if integer else 'a real'} dtype")
    return tensor.long() if integer else tensor


def _check_range(values, name, low, high, what):
    if values.numel() == 0:
        return
    bad = (values < low) | (values > high)
    if bad.any():
        raise ScoringError(f"{name}: {int(values[bad][0])} is outside {low}..{high} ({what})")
