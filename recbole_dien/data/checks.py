"""Checks of the atomic files a run loads, before RecBole builds the dataset from them.

RecBole reads its atomic files with pandas and trusts them: a row with a missing or an extra field
becomes an extra interaction, text in a float column ends in a pandas traceback with no line
number, a file with a header only in "Some feat is empty", and NaN / inf in a float feature in
"Training loss is nan" after an epoch. Here every file the config loads is checked first, and
the first problem stops the run with one :class:`~recbole_dien.utils.errors.DatasetError` line naming
the file, the line (or column) and the fix:

* the file exists and is not empty, and it is text in the configured ``encoding`` (UTF-8 by
  default): a byte that does not decode is named with its line and byte offset;
* its header is ``field:type`` with RecBole's types;
* every line has as many fields as the header (blank lines are skipped, as RecBole does); with
  ``malformed_rows: skip`` such rows are left out instead (counted and logged) - of the check and of
  the rows RecBole reads (:func:`lines_to_leave_out`, which :mod:`recbole_dien.compat` consults);
* the file has rows;
* every loaded ``float`` column parses as numbers and holds no NaN / inf. A missing value (an empty
  field, ``nan``) stops the run unless ``missing_float_values: mean`` lets RecBole impute the
  column mean (which RecBole 1.2.1 otherwise does silently); inf is never imputed.

The scans are vectorised (numpy over the file's bytes, pandas' C parser for float columns), so
checking costs a small fraction of RecBole's own read.
"""
import io
import logging
import os

import numpy as np
import pandas as pd

from recbole_dien.utils.errors import DatasetError
from recbole_dien.utils.hosts import RECBOLE, host_of

ATOMIC_SOURCES = ("inter", "user", "item")
_CHUNK_BYTES = 64 << 20     # bytes compared at once when looking for line ends
_CHUNK_LINES = 1 << 19      # lines whose separators are counted at once
# path -> (size, mtime, 0-based file line numbers) of the rows left out under malformed_rows: skip
_LEFT_OUT = {}


def atomic_file(config, source):
    return os.path.join(config["data_path"], f"{config['dataset']}.{source}")


def loaded_atomic_files(config):
    """(source, path) of each atomic file RecBole will load for this config."""
    if config["benchmark_filename"]:
        names = [("inter", atomic_file(config, f"{part}.inter")) for part in config["benchmark_filename"]]
    else:
        names = [("inter", atomic_file(config, "inter"))]
    names += [(source, atomic_file(config, source)) for source in ATOMIC_SOURCES[1:]]
    behaviors = config["behavior_log_suffix"]
    if behaviors:  # impressions' behaviour log (recbole_dien.data.impressions): required, like .inter
        names.append((behaviors, atomic_file(config, behaviors)))
    load_col = config["load_col"]
    return [(source, path) for source, path in names
            if os.path.isfile(path) or source in ("inter", behaviors)
            if load_col is None or source in load_col or source == behaviors]


def read_header(path, config):
    """[(field, FeatureType)] of an atomic file's header line."""
    if not os.path.isfile(path):
        raise DatasetError(
            f"dataset '{config['dataset']}' not found: there is no file {path} "
            f"(set data_path to the folder that holds the '{config['dataset']}' folder)"
        )
    if os.path.getsize(path) == 0:
        raise DatasetError(f"{path} is empty: an atomic file starts with a header line such as "
                           "'user_id:token<TAB>item_id:token<TAB>timestamp:float'")
    encoding = config["encoding"] or "utf-8"
    with open(path, "rb") as f:
        raw = f.readline()
    try:
        header = raw.decode(encoding).rstrip("\r\n")
    except UnicodeDecodeError as error:
        raise DatasetError(_decode_problem(path, encoding, error.start, 1, raw[error.start])) from None
    except LookupError:
        raise DatasetError(f"encoding={encoding!r} is not an encoding Python knows (e.g. utf-8, latin-1)") from None
    fields = []
    FeatureType = host_of(config, RECBOLE).FeatureType  # noqa: N806 - the run's host's
    for column in header.split(config["field_separator"]):
        field, sep, kind = column.partition(":")
        try:
            fields.append((field, FeatureType(kind)))
        except ValueError:
            known = ", ".join(t.value for t in FeatureType)
            problem = f"has no type (write '{field}:token')" if not sep else f"has type '{kind}'"
            raise DatasetError(f"{path}, line 1 (header): column '{field}' {problem}; "
                               f"RecBole's types are {known}") from None
    return fields


def loaded_fields(config, source, header):
    """The header's fields RecBole loads for ``source`` (load_col / unload_col)."""
    names = [field for field, _ in header]
    load_col, unload_col = config["load_col"], config["unload_col"]
    if load_col is not None and load_col.get(source) != "*":
        names = [n for n in names if n in set(load_col.get(source, ()))]
    if unload_col is not None and source in unload_col:
        names = [n for n in names if n not in set(unload_col[source])]
    return names


def _line_starts(data):
    """Start and end offsets (newline excluded) of every line after the header."""
    newlines = np.concatenate([np.flatnonzero(data[offset:offset + _CHUNK_BYTES] == 10) + offset
                               for offset in range(0, len(data), _CHUNK_BYTES)] or [np.zeros(0, np.int64)])
    starts = np.concatenate([[0], newlines + 1])
    ends = np.concatenate([newlines, [len(data)]])
    if starts[-1] == len(data):  # the file ends with a newline
        starts, ends = starts[:-1], ends[:-1]
    return starts[1:], ends[1:]


def _decode_problem(path, encoding, offset, line, byte):
    return (f"{path}, line {line}, byte offset {offset}: byte 0x{byte:02x} is not {encoding} text; save the file as "
            f"{encoding}, or set encoding to the file's own (e.g. encoding: latin-1)")


def check_encoding(path, data, starts, encoding):
    """Every byte of ``data`` (the file ``path``) decodes in ``encoding``; else one line naming the
    line and byte offset of the first one that does not. ``starts``: the offsets of lines 2, 3, ..."""
    ascii_compatible = "\n\t,:".encode(encoding) == b"\n\t,:"
    if ascii_compatible and len(starts):
        # cut at line starts: in an ASCII-compatible encoding no character spans a newline byte
        wanted = np.searchsorted(starts, np.arange(_CHUNK_BYTES, len(data), _CHUNK_BYTES))
        cuts = np.unique(np.concatenate([[0], starts[wanted[wanted < len(starts)]], [len(data)]]))
    else:
        cuts = np.array([0, len(data)])
    for begin, end in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
        chunk = data[begin:end]
        if ascii_compatible and not np.any(chunk >= 0x80):
            continue  # ASCII bytes are the same characters in every such encoding
        try:
            chunk.tobytes().decode(encoding)
        except UnicodeDecodeError as error:
            offset = begin + error.start
            line = 1 + int(np.searchsorted(starts, offset, side="right"))
            raise DatasetError(_decode_problem(path, encoding, offset, line, int(data[offset]))) from None


def scan_field_counts(path, separator, expected, encoding="utf-8", leave_out=False):
    """Check that every non-blank line after the header has ``expected`` fields (and decodes in
    ``encoding``); return the 0-based line numbers (after the header) of the blank lines, the
    number of rows, and those of the malformed lines left out (``leave_out``; else they stop the run)."""
    separator_bytes = separator.encode(encoding)
    data = np.memmap(path, dtype=np.uint8, mode="r") if os.path.getsize(path) else np.zeros(0, np.uint8)
    starts, ends = _line_starts(data)
    check_encoding(path, data, starts, encoding)
    ends = ends - ((ends > starts) & (data[np.maximum(ends - 1, 0)] == 13))  # CRLF files
    blank = np.flatnonzero(ends == starts)
    rows = len(starts) - len(blank)
    if len(separator_bytes) != 1:  # a multi-character separator: count per line in Python
        counts = np.array([data[s:e].tobytes().count(separator_bytes) for s, e in zip(starts, ends)])
    else:
        counts = np.zeros(len(starts), dtype=np.int64)
        # separators per line: a running count over a chunk of lines' bytes, read at line ends and starts
        for first in range(0, len(starts), _CHUNK_LINES):
            s, e = starts[first:first + _CHUNK_LINES], ends[first:first + _CHUNK_LINES]
            if len(s):
                running = np.cumsum(data[s[0]:e[-1]] == separator_bytes[0], dtype=np.int32)
                running = np.concatenate([np.zeros(1, np.int32), running])
                counts[first:first + len(s)] = running[e - s[0]] - running[s - s[0]]
    fields = counts + 1
    wrong = np.flatnonzero((fields != expected) & (ends > starts))
    if len(wrong) and not leave_out:
        line = int(wrong[0]) + 2
        more = f" ({len(wrong) - 1} more lines too)" if len(wrong) > 1 else ""
        raise DatasetError(f"{path}, line {line}: {int(fields[wrong[0]])} fields where the header has {expected}"
                           f"{more}; every row needs one value per header column, separated by "
                           f"{separator!r} (an empty value is allowed), or set malformed_rows: skip to leave such "
                           "rows out")
    return blank, rows - len(wrong), wrong


def _kept_lines(rows, left_out):
    """The 0-based line numbers (after the header) of ``rows`` rows read with ``left_out`` skipped."""
    return np.delete(np.arange(rows + len(left_out)), left_out)[:rows]


def check_float_columns(path, config, header, columns, blank_lines, left_out=()):
    """Every value of the float ``columns`` parses and is finite (missing values: see
    ``missing_float_values``). ``left_out``: 0-based line numbers (after the header) of rows not read."""
    if not columns:
        return
    impute = config["missing_float_values"] == "mean"
    separator = config["field_separator"]
    left_out = np.asarray(left_out, dtype=np.int64)
    read = dict(sep=separator, usecols=[f"{c}:float" for c in columns], header=0,
                encoding=config["encoding"] or "utf-8", skip_blank_lines=False,
                engine="c" if len(separator) == 1 else "python")  # pandas' C parser takes one character

    def source():
        return without_lines(path, (left_out + 1).tolist()) if len(left_out) else path

    try:
        frame = pd.read_csv(source(), dtype={f"{c}:float": np.float64 for c in columns}, **read)
    except ValueError:
        frame = None
    real, row_lines = np.ones(0, bool), np.zeros(0, np.int64)
    for column in columns:
        if frame is None or frame[f"{column}:float"].dtype != np.float64:
            text = pd.read_csv(source(), dtype=str, keep_default_na=False, **read)[f"{column}:float"]
            parsed = pd.to_numeric(text.str.strip().replace({"": "nan"}), errors="coerce")
            bad = np.flatnonzero(parsed.isna().to_numpy() & ~text.str.strip().str.lower().isin(
                ["", "nan", "na", "n/a", "null", "none", "-nan"]).to_numpy())
            if len(bad):
                line = int(_kept_lines(len(text), left_out)[bad[0]]) + 2
                raise DatasetError(f"{path}, line {line}, column '{column}' (float): {text.iloc[bad[0]]!r} is not a "
                                   f"number; fix the value, or declare the column '{column}:token' if it is a label")
            values = parsed.to_numpy(dtype=np.float64)
        else:
            values = frame[f"{column}:float"].to_numpy()
        if len(real) != len(values):
            row_lines = _kept_lines(len(values), left_out)
            real = ~np.isin(row_lines, blank_lines)
        infinite = np.flatnonzero(np.isinf(values) & real)
        if len(infinite):
            raise DatasetError(f"{path}, line {int(row_lines[infinite[0]]) + 2}, column '{column}' (float): "
                               f"{values[infinite[0]]} is not finite; replace it with a finite number (inf is never "
                               "imputed)")
        missing = np.flatnonzero(np.isnan(values) & real)
        if len(missing) and not impute:
            raise DatasetError(f"{path}, line {int(row_lines[missing[0]]) + 2}, column '{column}' (float) has no value "
                               f"({len(missing)} rows in all); fill it in, or set missing_float_values: mean to use "
                               "the column mean (RecBole's imputation)")


def _file_signature(path):
    status = os.stat(path)
    return status.st_size, status.st_mtime_ns


def lines_to_leave_out(path):
    """The 0-based line numbers of ``path`` (header = 0) that the last check left out under
    ``malformed_rows: skip``, or None; RecBole's reader skips them (:mod:`recbole_dien.compat`)."""
    entry = _LEFT_OUT.get(os.path.realpath(path))
    if entry is None or not os.path.isfile(path) or entry[0] != _file_signature(path):
        return None
    return list(entry[1])


class _LinesLeftOut(io.RawIOBase):
    """A file's bytes without some of its lines (0-based numbers, blank lines counted): what pandas
    reads instead of the file, since its ``skiprows`` counts lines differently per parser."""

    def __init__(self, path, lines):
        super().__init__()
        self._file, self._skip, self._number, self._pending = open(path, "rb"), set(lines), 0, b""

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self._pending:
            line = self._file.readline()
            if not line:
                return 0
            if self._number not in self._skip:
                self._pending = line
            self._number += 1
        size = min(len(buffer), len(self._pending))
        buffer[:size], self._pending = self._pending[:size], self._pending[size:]
        return size

    def close(self):
        self._file.close()
        super().close()


def without_lines(path, lines):
    """A binary file object of ``path`` without ``lines`` (0-based, header = 0)."""
    return io.BufferedReader(_LinesLeftOut(path, lines), buffer_size=1 << 20)


class PandasLeavingOutLines:
    """``pandas`` as RecBole's dataset module sees it while it reads one file: ``read_csv`` reads it
    without ``lines``."""

    def __init__(self, pandas, lines):
        self._pandas, self._lines = pandas, list(lines)

    def __getattr__(self, name):
        return getattr(self._pandas, name)

    def read_csv(self, path, *args, **kwargs):
        with without_lines(path, self._lines) as stream:
            return self._pandas.read_csv(stream, *args, **kwargs)


def _leave_out(path, wrong):
    """Record (and log) the malformed rows of ``path`` that RecBole will not read."""
    key = os.path.realpath(path)
    if not len(wrong):
        _LEFT_OUT.pop(key, None)
        return
    _LEFT_OUT[key] = (_file_signature(path), tuple(int(i) + 1 for i in wrong))
    first = ", ".join(str(int(i) + 2) for i in wrong[:5]) + (", ..." if len(wrong) > 5 else "")
    logging.getLogger().warning(f"{path}: left out {len(wrong)} malformed rows (lines {first}), as "
                                "malformed_rows: skip asks")


def check_atomic_files(config):
    """Check every atomic file the config loads (see the module docstring)."""
    leave_out = config["malformed_rows"] == "skip"
    for source, path in loaded_atomic_files(config):
        header = read_header(path, config)
        fields = loaded_fields(config, source, header)
        blank, rows, wrong = scan_field_counts(path, config["field_separator"], len(header),
                                               config["encoding"] or "utf-8", leave_out)
        _leave_out(path, wrong)
        if rows == 0 and fields:
            raise DatasetError(f"{path} has a header but no rows: add the {source} rows, "
                               + ("or point data_path at the right folder" if source == "inter"
                                  else f"or leave '{source}' out of load_col"))
        kinds = {field: kind.value for field, kind in header}
        check_float_columns(path, config, header, [f for f in fields if kinds[f] == "float"], blank, wrong)


def check_dataset(config):
    """Fail early, in one sentence, when the data files are malformed or lack a field the model needs."""
    if config["benchmark_filename"] is None:
        path = atomic_file(config, "inter")
        header = read_header(path, config)
        columns = [field for field, _ in header]
        loaded = set(loaded_fields(config, "inter", header))
        required = ["USER_ID_FIELD", "ITEM_ID_FIELD"]
        if config["MODEL_TYPE"] == host_of(config, RECBOLE).ModelType.SEQUENTIAL:
            required.append("TIME_FIELD")  # RecBole orders each user's behaviours by time
        for key in required:
            field = config[key]
            if field is None or field not in columns:
                raise DatasetError(
                    f"dataset '{config['dataset']}' has no column '{field}' ({key}) in {path}; "
                    f"{config['model']} needs it. Add that column, or set {key} to the name of the "
                    f"column that holds it (columns: {', '.join(columns)})"
                )
            if field not in loaded:
                raise DatasetError(f"column '{field}' ({key}) of {path} is not loaded; add it to load_col['inter']")
    if config["behavior_log_suffix"]:
        check_behavior_log(config)
    check_atomic_files(config)


def check_behavior_log(config):
    """The behaviour log of impressions (``behavior_log_suffix``) exists and loads the user and time
    columns (the same names as in the .inter file) and at least one behaviour field."""
    suffix = config["behavior_log_suffix"]
    path = atomic_file(config, suffix)
    if not os.path.isfile(path):
        raise DatasetError(f"dataset '{config['dataset']}' has no behaviour log {path} (behavior_log_suffix={suffix!r}): "
                           f"write the behaviours there, or set behavior_log_suffix to the suffix of the file that "
                           "holds them")
    if config["load_col"] is not None and suffix not in config["load_col"]:
        raise DatasetError(f"load_col has no '{suffix}' entry, so no column of the behaviour log {path} would load: "
                           f"add load_col['{suffix}'] (its user, time and behaviour columns)")
    header = read_header(path, config)
    loaded = loaded_fields(config, suffix, header)
    for key in ("USER_ID_FIELD", "TIME_FIELD"):
        field = config[key]
        if field not in loaded:
            where = "is not loaded (add it to load_col)" if field in dict(header) else "is missing"
            raise DatasetError(f"the behaviour log {path} needs column '{field}' ({key}, as in the .inter file), which "
                               f"{where}; its columns: {', '.join(f for f, _ in header)}")
    if not set(loaded) - {config["USER_ID_FIELD"], config["TIME_FIELD"]}:
        raise DatasetError(f"the behaviour log {path} loads no behaviour field besides user and time: load its "
                           "category, brand, behaviour type or item columns")
