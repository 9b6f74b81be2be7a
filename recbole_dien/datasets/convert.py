"""Converters from public raw files to RecBole atomic files, and what they share.

    python -m recbole_dien.datasets NAME --raw DIR --out DIR [NAME's options]
    recbole-dien convert NAME --raw DIR --out DIR [NAME's options]

Each converter is a module ``recbole_dien/datasets/<name>.py`` (registered in :data:`CONVERTERS`)
with ``add_arguments(parser)`` (its own options) and ``convert(raw_dir, out_dir, **options)``,
which writes ``out_dir/<dataset>/`` - the atomic files and ``<dataset>.yaml`` - and returns a
:class:`ConversionReport`. Converters are imported only when asked for, so a converter whose
module is missing from this checkout is one line naming it, not a broken registry.

What they share, so each converter only says what its layout is:

* :func:`raw_file`: a raw file by its public name, plain or ``.gz``;
* :func:`read_csv_blocks`: a CSV streamed in blocks of bytes: header (or, without one, the field
  count) checked against the layout, lines with the wrong number of fields and cells that are not
  numbers counted as malformed with their line numbers, each block parsed by pandas' C parser;
* :func:`read_record_lines`: JSON lines (or Python-literal lines, :func:`python_literal`, which never
  runs code) streamed in chunks of lines, malformed lines counted likewise;
* :class:`LineTally`: per raw file, the lines read and the lines malformed or dropped, each reason
  with its count and first line number;
* :class:`AtomicFileWriter`: an atomic file (RecBole's ``name:type`` header, tab-separated) written
  chunk by chunk into a temporary name and renamed when whole;
* :func:`write_dataset_config`: the ``<dataset>.yaml`` with its protocol explained in comments;
* :class:`ConversionReport`: what was read, left out and written, printed at the end.

The raw layouts read here have no quoted fields (Taobao's and Alibaba's CSVs are plain numbers
and short tokens), so a line's field count is its separator count plus one; a layout with quoting
would need another reader.
"""
import argparse
import ast
import gzip
import importlib
import io
import json
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import yaml

from recbole_dien.utils.errors import DatasetError, RecBoleDienError, report

# name -> (module, what it converts)
CONVERTERS = {
    "alimama": ("recbole_dien.datasets.alimama",
                "Taobao's display-ad clicks (raw_sample, behavior_log, ad_feature, user_profile): DIN's and DSIN's setting"),
    "amazon": ("recbole_dien.datasets.amazon",
               "McAuley's 2014 Amazon reviews and meta of one category (--category Books): DIN's and DIEN's setting"),
    "taobao": ("recbole_dien.datasets.taobao",
               "Taobao's UserBehavior.csv (pv/buy/cart/fav of 9 days, no header)"),
}

BLOCK_BYTES = 64 << 20        # bytes of a CSV parsed at once: bounded memory whatever the file's size
RECORD_LINES = 100_000        # JSON / literal lines parsed at once
LAYOUT_CHECK_SHARE = 0.5      # more than this share of malformed lines in a file's first block: not this layout
MAX_LITERAL_CHARS = 1 << 20   # a Python-literal line longer than this is malformed (never handed to the parser)
MAX_LITERAL_DEPTH = 20        # nor one whose brackets nest deeper (the meta lines nest 3 deep)


def load_converter(name):
    """The converter module registered as ``name``; one :class:`DatasetError` line where there is none."""
    if name not in CONVERTERS:
        raise DatasetError(f"no converter named '{name}': use one of {', '.join(CONVERTERS)}")
    module = CONVERTERS[name][0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module:
            raise
        path = module.replace(".", "/") + ".py"
        raise DatasetError(f"converter '{name}' is registered but {path} is not in this installation "
                           "(update the package)") from None


def convert(converter, raw_dir, out_dir, **options):
    """Run converter ``converter`` (its registered name) on the raw files in ``raw_dir``; writes ``out_dir/<dataset>/`` and
    returns its :class:`ConversionReport`."""
    if not os.path.isdir(raw_dir):
        raise DatasetError(f"--raw {raw_dir}: no such folder (give the folder that holds the raw files)")
    return load_converter(converter).convert(raw_dir, out_dir, **options)


# --- raw files -----------------------------------------------------------------------------------

def raw_file(raw_dir, name, what):
    """The path of raw file ``name`` in ``raw_dir``, plain or gzipped (``name.gz``)."""
    for candidate in (name, name + ".gz"):
        path = os.path.join(raw_dir, candidate)
        if os.path.isfile(path):
            return path
    raise DatasetError(f"{raw_dir}: no {name} (nor {name}.gz), {what}")


def open_binary(path):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


@dataclass
class Problem:
    count: int = 0
    first_line: int = 0
    example: str = ""


@dataclass
class LineTally:
    """The lines of one raw file: how many were read, and per reason how many were malformed
    (could not be read) or dropped (read, but left out by the protocol), with the first one's line
    number (1-based, as an editor shows it)."""
    path: str
    lines: int = 0
    malformed: dict = field(default_factory=dict)
    dropped: dict = field(default_factory=dict)

    def _add(self, table, reason, line_numbers, example=""):
        line_numbers = np.asarray(line_numbers)
        if not len(line_numbers):
            return
        problem = table.setdefault(reason, Problem(first_line=int(line_numbers.min()), example=example))
        if int(line_numbers.min()) < problem.first_line:
            problem.first_line, problem.example = int(line_numbers.min()), example or problem.example
        problem.count += len(line_numbers)

    def add_malformed(self, reason, line_numbers, example=""):
        self._add(self.malformed, reason, line_numbers, example)

    def add_dropped(self, reason, line_numbers):
        self._add(self.dropped, reason, line_numbers)

    @property
    def malformed_count(self):
        return sum(problem.count for problem in self.malformed.values())

    def first_malformed(self):
        """(reason, Problem) of the earliest malformed line, or None."""
        return min(self.malformed.items(), key=lambda item: item[1].first_line, default=None)

    def summary(self):
        parts = [f"{os.path.basename(self.path)}: {self.lines:,} lines read"]
        for table, verb in ((self.malformed, "malformed"), (self.dropped, "dropped")):
            for reason, problem in sorted(table.items(), key=lambda item: item[1].first_line):
                parts.append(f"{problem.count:,} {verb}: {reason} (first: line {problem.first_line:,})")
        return "; ".join(parts)

    def as_dict(self):
        def table(entries):
            return {reason: {"count": p.count, "first_line": p.first_line} for reason, p in entries.items()}
        return {"lines": self.lines, "malformed": table(self.malformed), "dropped": table(self.dropped)}


def _check_layout(tally, layout_name, first_block_lines, malformed_before):
    """Stop where most of a file's first block is malformed: the file is not in this layout."""
    malformed = tally.malformed_count - malformed_before
    if first_block_lines and malformed > LAYOUT_CHECK_SHARE * first_block_lines:
        reason, problem = tally.first_malformed()
        raise DatasetError(f"{tally.path} is not in {layout_name}'s layout: {malformed:,} of its first "
                           f"{first_block_lines:,} lines are malformed (line {problem.first_line}: {reason})")


def _byte_blocks(path, block_bytes):
    """(bytes ending at a line end, index of its first line among the file's lines) over the file."""
    with open_binary(path) as f:
        rest, line = b"", 0
        while True:
            data = f.read(block_bytes)
            if not data:
                break
            data = rest + data
            cut = data.rfind(b"\n") + 1
            if cut == 0:  # a line longer than a block: keep reading until it ends
                rest = data
                continue
            block, rest = data[:cut], data[cut:]
            yield block, line
            line += block.count(b"\n")
        if rest:
            yield rest + b"\n", line


def _line_bounds(array):
    """Start and end (exclusive, before the newline) of each line of a block that ends with a newline."""
    ends = np.flatnonzero(array == ord("\n"))
    starts = np.concatenate([[0], ends[:-1] + 1])
    return starts, ends


@dataclass
class CsvLayout:
    """A CSV layout: its column names in file order (or, with a header, the names the header must
    hold), which are numbers, which may be empty, and which cell texts mean missing (e.g. ``NULL``)."""
    name: str                      # e.g. "Taobao's UserBehavior.csv"
    columns: list                  # names, in file order when there is no header
    numeric: tuple = ()            # columns parsed as numbers (float64)
    integers: tuple = ()           # numeric columns that hold whole numbers: int64 (float64 where optional)
    optional: tuple = ()           # columns that may be empty / missing
    missing: tuple = ("",)         # cell texts read as missing
    header: bool = True
    separator: str = ","


def _read_header(path, layout):
    with open_binary(path) as f:
        first = f.readline()
    try:
        names = [name.strip() for name in first.decode("utf-8").rstrip("\r\n").split(layout.separator)]
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: its first line is not UTF-8 text: expected {layout.name}'s header "
                           f"({layout.separator.join(layout.columns)})") from None
    for column in layout.columns:
        if column not in names:
            raise DatasetError(f"{path}: its header has no column '{column}' (header: {','.join(names)}); "
                               f"expected {layout.name}'s columns {','.join(layout.columns)}")
    return names, len(first)


def read_csv_blocks(path, layout, tally, block_bytes=BLOCK_BYTES):
    """Stream ``path`` in blocks; yield (frame of ``layout.columns``, 1-based line number of each row).

    A line with the wrong number of fields, an empty cell in a column that is not optional, or a
    cell that is not a number in a numeric column is malformed: counted in ``tally`` and left out.
    Blank lines are skipped. More than half of the first block malformed stops the conversion in
    one line: the file is not in this layout."""
    if layout.header:
        names, _ = _read_header(path, layout)
    else:
        names = list(layout.columns)
    separator = ord(layout.separator)
    numeric = set(layout.numeric) | set(layout.integers)
    missing_text = set(layout.missing)
    first_block = True
    for block, first_index in _byte_blocks(path, block_bytes):
        array = np.frombuffer(block, dtype=np.uint8)
        starts, line_ends = _line_bounds(array)
        numbers = first_index + 1 + np.arange(len(starts))
        # a trailing carriage return (a file written on Windows) is not part of the last field
        ends = line_ends - ((line_ends > starts) & (array[np.maximum(line_ends - 1, 0)] == ord("\r")))
        header_line = np.zeros(len(starts), dtype=bool)
        header_line[0] = layout.header and first_index == 0  # the header is not a row
        blank = (ends == starts) & ~header_line
        separators = np.flatnonzero(array == separator)
        fields = np.searchsorted(separators, ends) - np.searchsorted(separators, starts) + 1
        wrong = ~blank & ~header_line & (fields != len(names))
        rows_in_block = int((~blank & ~header_line).sum())
        malformed_before = tally.malformed_count
        tally.lines += rows_in_block
        for count in np.unique(fields[wrong]):
            tally.add_malformed(f"{count} fields where {layout.name} has {len(names)}",
                                numbers[wrong & (fields == count)])
        keep = ~blank & ~wrong & ~header_line
        if not keep.any():
            if first_block:
                _check_layout(tally, layout.name, rows_in_block, malformed_before)
            first_block = False
            continue
        # the kept lines' bytes as one buffer for pandas: a mask over the block, no Python loop
        kept = array[np.repeat(keep, line_ends + 1 - starts)].tobytes()
        rows = numbers[keep]
        frame = pd.read_csv(io.BytesIO(kept), sep=layout.separator, header=None, names=names,
                            usecols=layout.columns, dtype={c: str for c in layout.columns if c not in numeric},
                            keep_default_na=False, na_values=list(missing_text), engine="c", skipinitialspace=False)
        frame = frame[layout.columns]
        bad = np.zeros(len(frame), dtype=bool)
        for column in layout.columns:
            values = frame[column]
            empty = values.isna().to_numpy()
            if column in numeric and values.dtype.kind not in "iuf":
                parsed = pd.to_numeric(values, errors="coerce")
                not_number = parsed.isna().to_numpy() & ~empty & ~bad
                if not_number.any():
                    first = int(np.argmax(not_number))
                    tally.add_malformed(f"'{column}' is not a number", rows[not_number],
                                        example=str(values.iloc[first]))
                    bad |= not_number
                frame[column] = values = parsed
            if column in layout.integers and values.dtype.kind == "f":
                fraction = (values.to_numpy() % 1 != 0) & ~empty & ~bad
                if fraction.any():
                    tally.add_malformed(f"'{column}' is not a whole number", rows[fraction])
                    bad |= fraction
            if column not in layout.optional and empty.any():
                tally.add_malformed(f"'{column}' is empty", rows[empty & ~bad])
                bad |= empty
        if first_block:
            _check_layout(tally, layout.name, rows_in_block, malformed_before)
            first_block = False
        if bad.any():
            frame, rows = frame[~bad].reset_index(drop=True), rows[~bad]
        for column in layout.integers:
            if column not in layout.optional and frame[column].dtype.kind != "i":
                frame[column] = frame[column].astype(np.int64)
        yield frame, rows


def python_literal(line, max_chars=MAX_LITERAL_CHARS, max_depth=MAX_LITERAL_DEPTH):
    """The value of a line that holds a Python literal (e.g. ``{'asin': 'x', 'categories': [['Books']]}``),
    without running anything: :func:`ast.literal_eval` accepts only literals, so a line such as
    ``__import__('os').system(...)`` raises ``ValueError`` instead of running. Lines longer than
    ``max_chars`` or with brackets nested deeper than ``max_depth`` (counted outside strings too;
    a bound, not a parse) are refused before the parser sees them, so no line can exhaust the
    parser's stack or memory."""
    if len(line) > max_chars:
        raise ValueError(f"longer than {max_chars:,} characters")
    opening = sum(line.count(c) for c in "([{")
    if opening > max_depth:  # cheap first test; most lines stop here
        depth = deepest = 0
        for char in line:
            if char in "([{":
                depth += 1
                deepest = max(deepest, depth)
            elif char in ")]}":
                depth -= 1
        if deepest > max_depth:
            raise ValueError(f"brackets nested deeper than {max_depth}")
    try:
        return ast.literal_eval(line.strip())
    except (SyntaxError, TypeError, MemoryError, RecursionError) as error:
        raise ValueError(type(error).__name__) from None


def read_record_lines(path, layout_name, required, tally, parse=json.loads, chunk_lines=RECORD_LINES,
                      not_parsed="not JSON", keep=None):
    """Stream a file of one record (a dict) per line; yield (list of records, their 1-based line numbers).

    ``parse`` reads a line (``json.loads``, or :func:`python_literal` for Python-literal lines);
    a line it refuses, one that is not a dict, or one that lacks a ``required`` field is malformed.
    ``keep(text)``, where given, is asked first and a line it refuses is skipped without parsing
    (e.g. meta lines of items no review names), counted as neither. More than half of the first
    chunk malformed stops the conversion in one line (the missing field named)."""
    records, numbers, first_chunk, in_chunk, malformed_before = [], [], True, 0, 0
    with open_binary(path) as f:
        for number, raw in enumerate(f, start=1):
            text = raw.strip()
            if not text:
                continue
            tally.lines += 1
            in_chunk += 1
            try:
                line = text.decode("utf-8")
            except UnicodeDecodeError as error:
                tally.add_malformed("not UTF-8", [number], example=f"byte {error.start}")
                line = None
            if line is not None and (keep is None or keep(line)):
                _parse_record(line, number, parse, required, tally, not_parsed, records, numbers)
            if in_chunk == chunk_lines:
                if first_chunk:
                    _check_layout(tally, layout_name, in_chunk, malformed_before)
                    first_chunk = False
                if records:
                    yield records, np.asarray(numbers)
                records, numbers, in_chunk = [], [], 0
    if first_chunk:
        _check_layout(tally, layout_name, in_chunk, malformed_before)
    if records:
        yield records, np.asarray(numbers)


def _parse_record(line, number, parse, required, tally, not_parsed, records, numbers):
    try:
        record = parse(line)
    except (ValueError, RecursionError):
        tally.add_malformed(not_parsed, [number])
        return
    if not isinstance(record, dict):
        tally.add_malformed(f"not a record ({type(record).__name__})", [number])
        return
    for name in required:
        if record.get(name) is None:
            tally.add_malformed(f"no field '{name}'", [number])
            return
    records.append(record)
    numbers.append(number)


# --- atomic files --------------------------------------------------------------------------------

class AtomicFileWriter:
    """One RecBole atomic file written chunk by chunk: ``name:type`` header, tab-separated rows.

    Written under ``<path>.partial`` and renamed on a clean close, so an interrupted conversion
    never leaves a file that looks whole. Tabs and line ends inside text values (titles, tokens)
    become spaces: they would split RecBole's rows. NaN / None is written as an empty field."""

    TYPES = ("token", "token_seq", "float", "float_seq")

    def __init__(self, path, fields):
        self.path, self.fields, self.rows = path, list(fields), 0
        for name, kind in self.fields:
            if kind not in self.TYPES:
                raise ValueError(f"{name}: '{kind}' is not one of RecBole's field types {self.TYPES}")
        self._partial = path + ".partial"
        self._file = open(self._partial, "w", encoding="utf-8", newline="\n")
        self._file.write("\t".join(f"{name}:{kind}" for name, kind in self.fields) + "\n")

    def write(self, columns):
        """Append rows: ``columns`` maps each field name to a sequence (all of one length)."""
        frame = pd.DataFrame({name: columns[name] for name, _ in self.fields})
        for name, kind in self.fields:
            if frame[name].dtype.kind not in "iufb":
                # looked for among the distinct values: cheap for the usual few-valued token columns
                distinct = pd.Series(pd.unique(frame[name].dropna())).astype(str)
                if distinct.str.contains(r"[\t\r\n]", regex=True).any():
                    frame[name] = frame[name].str.replace(r"[\t\r\n]", " ", regex=True)
        frame.to_csv(self._file, sep="\t", header=False, index=False, lineterminator="\n", na_rep="")
        self.rows += len(frame)

    def close(self):
        self._file.close()
        os.replace(self._partial, self.path)

    def abort(self):
        self._file.close()
        if os.path.exists(self._partial):
            os.remove(self._partial)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None:
            self.close()
        else:
            self.abort()
        return False


def last_target_protocol(load_col, history_length):
    """The DIEN paper's protocol on a log without labels, as settings: each user's last
    interaction is the test target (the one before it validation), in time order, scored against
    one sampled negative item; trained point-wise on each positive and one sampled negative; AUC."""
    return {
        "load_col": load_col,
        "MAX_ITEM_LIST_LENGTH": history_length,
        "normalize_all": False,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "uni1"},
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
        "metrics": ["AUC", "LogLoss"],
        "valid_metric": "AUC",
        "repeatable": True,
    }


def write_dataset_config(folder, dataset, comment, settings):
    """Write ``folder/<dataset>.yaml``: ``comment`` (the protocol explained, as ``#`` lines) above
    ``settings`` as plain YAML. Returns its path."""
    path = os.path.join(folder, f"{dataset}.yaml")
    lines = [f"# {line}".rstrip() for line in comment.strip().splitlines()]
    text = "\n".join(lines) + "\n" + yaml.safe_dump(settings, sort_keys=False, default_flow_style=None, width=120)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def dataset_folder(out_dir, dataset):
    folder = os.path.join(out_dir, dataset)
    os.makedirs(folder, exist_ok=True)
    return folder


# --- the report ----------------------------------------------------------------------------------

@dataclass
class ConversionReport:
    """What a conversion read, left out and wrote: printed by the command, returned by :func:`convert`."""
    dataset: str
    folder: str
    out_dir: str
    model: str = "DIEN"                               # the model the run command in the report names
    tallies: list = field(default_factory=list)       # LineTally per raw file read
    written: dict = field(default_factory=dict)       # atomic file name -> rows
    notes: list = field(default_factory=list)         # anything else worth a line (e.g. rows dropped by a rule)
    seconds: float = 0.0

    @property
    def config_file(self):
        return os.path.join(self.folder, f"{self.dataset}.yaml")

    def run_command(self):
        return (f"python run_recbole.py --model={self.model} --dataset={self.dataset} --data_path={self.out_dir} "
                f"--config_files={self.config_file}")

    def lines(self):
        out = [f"{self.dataset}: wrote {self.folder} in {self.seconds:.1f} s"]
        out += [f"  {name}: {rows:,} rows" for name, rows in self.written.items()]
        out += [f"  {tally.summary()}" for tally in self.tallies]
        out += [f"  {note}" for note in self.notes]
        out.append(f"  run it: {self.run_command()}")
        return out

    def as_dict(self):
        return {"dataset": self.dataset, "folder": self.folder, "seconds": round(self.seconds, 3),
                "written": dict(self.written), "notes": list(self.notes),
                "raw": {os.path.basename(t.path): t.as_dict() for t in self.tallies}}


class Timer:
    def __init__(self):
        self.start = time.perf_counter()

    def seconds(self):
        return time.perf_counter() - self.start


# --- the command ---------------------------------------------------------------------------------

def build_parser(prog, converter=None, name=None):
    listing = "\n".join(f"  {key:<8} {purpose}" for key, (_, purpose) in CONVERTERS.items())
    parser = argparse.ArgumentParser(
        prog=prog if name is None else f"{prog} {name}", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=("Convert a public dataset's raw files into RecBole atomic files and a dataset config "
                     "(the paper's protocol)." if converter is None else (converter.__doc__ or "").strip()),
        epilog=f"converters:\n{listing}\n\n`{prog} NAME --help` says what NAME reads and writes.",
    )
    if converter is None:
        parser.add_argument("name", metavar="NAME", help="one of: " + ", ".join(CONVERTERS))
        parser.add_argument("arguments", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        return parser
    parser.add_argument("--raw", required=True, help="the folder that holds the raw files")
    parser.add_argument("--out", required=True, help="the data_path folder: the dataset goes to OUT/<dataset>/")
    converter.add_arguments(parser)
    return parser


def main(argv=None, prog="recbole-dien convert"):
    argv = sys.argv[1:] if argv is None else list(argv)
    top = build_parser(prog)
    if not argv:
        top.print_help(sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        top.parse_args(argv)  # prints the help, with the converters listed, and exits
    if argv[0].startswith("-"):
        return report(top, DatasetError(f"the converter's NAME comes first: {top.prog} "
                                        f"{'|'.join(CONVERTERS)} --raw DIR --out DIR"))
    name = argv[0]
    try:
        converter = load_converter(name)
    except RecBoleDienError as error:
        return report(top, error)
    parser = build_parser(prog, converter, name)
    args = vars(parser.parse_args(argv[1:]))
    raw, out = args.pop("raw"), args.pop("out")
    try:
        result = convert(name, raw, out, **args)
    except RecBoleDienError as error:
        return report(parser, error)
    print("\n".join(result.lines()))
    return 0
