"""The ``recbole-dien`` command: one subcommand per job, each with its own ``--help``.

``run_recbole.py`` and ``run_hyper.py`` at the top of the checkout are ``recbole-dien run`` and
``recbole-dien tune`` under RecBole's script names; ``python -m recbole_dien`` is this command.
Every subcommand reports a problem the user can fix as one line (:func:`recbole_dien.utils.errors.report`).
"""
import argparse
import importlib
import sys

PROG = "recbole-dien"

# subcommand -> (module whose main(argv, prog) runs it, what it does)
COMMANDS = {
    "run": ("recbole_dien.quick_start.quick_start", "train, validate and test a model (run_recbole.py)"),
    "tune": ("recbole_dien.quick_start.tuning", "hyper-parameter search with RecBole's HyperTuning (run_hyper.py)"),
    "recommend": ("recbole_dien.serving.recommend", "top-K items per user from a checkpoint"),
    "export": ("recbole_dien.serving.export", "a serving program of a checkpoint: torch.export or ONNX, int8"),
    "plot": ("recbole_dien.serving.attention_plot", "attention heatmap of a checkpoint for one user"),
    "synthetic": ("recbole_dien.datasets.synthetic", "write a synthetic click log as RecBole atomic files"),
    "convert": ("recbole_dien.datasets.convert", "convert a public dataset's raw files (alimama, amazon, taobao)"),
    "benchmark": ("recbole_dien.benchmark.command", "models x protocols x seeds: runs.csv, tables, plots"),
}


def build_parser():
    listing = "\n".join(f"  {name:<10} {purpose}" for name, (_, purpose) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="DIN, DIEN and DSIN for RecBole: train, tune, recommend, export, benchmark.",
        epilog=f"commands:\n{listing}\n\n`{PROG} COMMAND --help` says what a command does and takes.",
    )
    parser.add_argument("command", metavar="COMMAND", help="one of: " + ", ".join(COMMANDS))
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def run_command(name, argv, prog=None):
    """Run subcommand ``name`` with ``argv``; its exit status."""
    module, _ = COMMANDS[name]
    return importlib.import_module(module).main(list(argv), prog=prog or f"{PROG} {name}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if not argv:
        parser.print_help(sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    if argv[0] not in COMMANDS:
        parser.error(f"unknown command '{argv[0]}': use one of {', '.join(COMMANDS)} "
                     f"(e.g. {PROG} run --model=DIN)")
    return run_command(argv[0], argv[1:])
