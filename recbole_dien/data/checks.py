"""Checks of the atomic files a run loads, before RecBole builds the dataset from them.

RecBole reads its atomic files with pandas and trusts them: a row with a missing or an extra field
becomes an extra interaction, text in a float column ends in a pandas traceback with no line
number, a file with a header only in "Some feat is empty", and NaN / inf in a float feature in
"Training loss is nan" after an epoch. Here every file the config loads is checked first, and
the first problem stops the run with one :class:`~recbole_dien.utils.errors.DatasetError` line naming
the file, the line (or column) and the fix:

* the file exists and is not empty, its header is ``field:type`` with RecBole's types;
* every line has as many fields as the header (blank lines are skipped, as RecBole does);
* the file has rows;
* every loaded ``float`` column parses as numbers and holds no NaN / inf. A missing value (an empty
  field, ``nan``) stops the run unless ``missing_float_values: mean`` lets RecBole impute the
  column mean (which RecBole 1.2.1 otherwise does silently); inf is never imputed.

The scans are vectorised (numpy over the file's bytes, pandas' C parser for float columns), so
checking costs a small fraction of RecBole's own read.
"""
import os

import numpy as np
import pandas as pd
from recbole.utils import FeatureType, ModelType

from recbole_dien.utils.errors import DatasetError

ATOMIC_SOURCES = ("inter", "user", "item")
_CHUNK_BYTES = 64 << 20     # bytes compared at once when looking for line ends
_CHUNK_LINES = 1 << 19      # lines whose separators are counted at once


def atomic_file(config, source):
    return os.path.join(config["data_path"], f"{config['dataset']}.{source}")


def loaded_atomic_files(config):
    """(source, path) of each atomic file RecBole will load for this config."""
    if config["benchmark_filename"]:
        names = [("inter", atomic_file(config, f"{part}.inter")) for part in config["benchmark_filename"]]
    else:
        names = [("inter", atomic_file(config, "inter"))]
    names += [(source, atomic_file(config, source)) for source in ATOMIC_SOURCES[1:]]
    load_col = config["load_col"]
    return [(source, path) for source, path in names
            if os.path.isfile(path) or source == "inter"
            if load_col is None or source in load_col]


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
    with open(path, encoding=config["encoding"] or "utf-8") as f:
        header = f.readline().rstrip("\r\n")
    fields = []
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


def scan_field_counts(path, separator, expected):
    """Check that every non-blank line after the header has ``expected`` fields; return the
    0-based line numbers of the blank lines and the number of rows."""
    separator_bytes = separator.encode()
    data = np.memmap(path, dtype=np.uint8, mode="r") if os.path.getsize(path) else np.zeros(0, np.uint8)
    starts, ends = _line_starts(data)
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
    if len(wrong):
        line = int(wrong[0]) + 2
        more = f" ({len(wrong) - 1} more lines too)" if len(wrong) > 1 else ""
        raise DatasetError(f"{path}, line {line}: {int(fields[wrong[0]])} fields where the header has {expected}"
                           f"{more}; every row needs one value per header column, separated by "
                           f"{separator!r} (an empty value is allowed)")
    return blank, rows


def check_float_columns(path, config, header, columns, blank_lines):
    """Every value of the float ``columns`` parses and is finite (missing values: see
    ``missing_float_values``)."""
    if not columns:
        return
    impute = config["missing_float_values"] == "mean"
    separator = config["field_separator"]
    read = dict(sep=separator, usecols=[f"{c}:float" for c in columns], header=0,
                encoding=config["encoding"] or "utf-8", skip_blank_lines=False,
                engine="c" if len(separator) == 1 else "python")  # pandas' C parser takes one character
    try:
        frame = pd.read_csv(path, dtype={f"{c}:float": np.float64 for c in columns}, **read)
    except ValueError:
        frame = None
    real = np.ones(0, bool)
    for column in columns:
        if frame is None or frame[f"{column}:float"].dtype != np.float64:
            text = pd.read_csv(path, dtype=str, keep_default_na=False, **read)[f"{column}:float"]
            parsed = pd.to_numeric(text.str.strip().replace({"": "nan"}), errors="coerce")
            bad = np.flatnonzero(parsed.isna().to_numpy() & ~text.str.strip().str.lower().isin(
                ["", "nan", "na", "n/a", "null", "none", "-nan"]).to_numpy())
            if len(bad):
                line = int(bad[0]) + 2
                raise DatasetError(f"{path}, line {line}, column '{column}' (float): {text.iloc[bad[0]]!r} is not a "
                                   f"number; fix the value, or declare the column '{column}:token' if it is a label")
            values = parsed.to_numpy(dtype=np.float64)
        else:
            values = frame[f"{column}:float"].to_numpy()
        if len(real) != len(values):
            real = np.ones(len(values), bool)
            real[blank_lines[blank_lines < len(values)]] = False
        infinite = np.flatnonzero(np.isinf(values) & real)
        if len(infinite):
            raise DatasetError(f"{path}, line {int(infinite[0]) + 2}, column '{column}' (float): {values[infinite[0]]} "
                               "is not finite; replace it with a finite number (inf is never imputed)")
        missing = np.flatnonzero(np.isnan(values) & real)
        if len(missing) and not impute:
            raise DatasetError(f"{path}, line {int(missing[0]) + 2}, column '{column}' (float) has no value "
                               f"({len(missing)} rows in all); fill it in, or set missing_float_values: mean to use "
                               "the column mean (RecBole's imputation)")


def check_atomic_files(config):
    """Check every atomic file the config loads (see the module docstring)."""
    for source, path in loaded_atomic_files(config):
        header = read_header(path, config)
        fields = loaded_fields(config, source, header)
        blank, rows = scan_field_counts(path, config["field_separator"], len(header))
        if rows == 0 and fields:
            raise DatasetError(f"{path} has a header but no rows: add the {source} rows, "
                               + ("or point data_path at the right folder" if source == "inter"
                                  else f"or leave '{source}' out of load_col"))
        kinds = dict(header)
        check_float_columns(path, config, header, [f for f in fields if kinds[f] == FeatureType.FLOAT], blank)


def check_dataset(config):
    """Fail early, in one sentence, when the data files are malformed or lack a field the model needs."""
    if config["benchmark_filename"] is None:
        path = atomic_file(config, "inter")
        header = read_header(path, config)
        columns = [field for field, _ in header]
        loaded = set(loaded_fields(config, "inter", header))
        required = ["USER_ID_FIELD", "ITEM_ID_FIELD"]
        if config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
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
    check_atomic_files(config)
