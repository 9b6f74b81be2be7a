"""``recbole-dien benchmark``: the suite's command line (see :mod:`recbole_dien.benchmark`)."""
import argparse
import json
import sys
from pathlib import Path

from recbole_dien.benchmark import __doc__ as DESCRIPTION
from recbole_dien.benchmark.harness import print_result
from recbole_dien.benchmark.measure import RESERVED_SETTINGS, measure
from recbole_dien.benchmark.pause import hold
from recbole_dien.benchmark.plan import DEFAULT_MODELS, DEFAULT_SEEDS, PROTOCOLS, QUICK_MODELS
from recbole_dien.benchmark.suite import run_suite
from recbole_dien.utils.errors import RecBoleDienError, report, require_extra

CONVERGED_EPOCHS, CONVERGED_STOPPING_STEP = 30, 3


def build_parser(prog="recbole-dien benchmark"):
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", help=f"default: {' '.join(DEFAULT_MODELS)}")
    parser.add_argument("--protocols", nargs="+", help=f"default: {' '.join(PROTOCOLS)} (--quick: default)")
    parser.add_argument("--seeds", nargs="+", type=int,
                        help=f"default: {' '.join(map(str, DEFAULT_SEEDS))} (--quick: {DEFAULT_SEEDS[0]})")
    parser.add_argument("--epochs", type=int, help=f"at most this many epochs per run (default {CONVERGED_EPOCHS}; "
                        "--quick: 1); early stopping after stopping_step validations without improvement "
                        f"(default {CONVERGED_STOPPING_STEP}, --set stopping_step=N to change)")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--out", default="benchmarks/results", help="folder of runs.csv, results.md, *.png")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for every run (YAML value), e.g. --set train_batch_size=1024")
    parser.add_argument("--config_files", nargs="+", help="YAML files for every run")
    parser.add_argument("--timeout", type=float, help="seconds after which a run is stopped and recorded as timeout")
    parser.add_argument("--retry-failed", action="store_true", help="run again the runs recorded as failed or timeout")
    parser.add_argument("--quick", action="store_true", help="default protocol, 1 seed, 1 epoch, and unless "
                        f"--models is given: {' '.join(QUICK_MODELS)}")
    parser.add_argument("--pause", nargs=argparse.REMAINDER, metavar="COMMAND",
                        help="run COMMAND (and its arguments: the rest of the line) while the measured runs wait; "
                             "their timings leave the wait out")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser


def main(argv=None, prog="recbole-dien benchmark"):
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.pause is not None:
        if not args.pause:
            parser.error("--pause needs the command to run, e.g. --pause pytest tests/model")
        return hold(args.pause, log=lambda line: print(line, file=sys.stderr, flush=True))
    if args.child:
        spec = json.loads(args.child)
        print_result(measure(spec["entry"], spec["dataset"], spec["protocol"], spec["seed"], spec["epochs"],
                             spec["overrides"], spec["config_files"], spec.get("work_dir")))
        return 0
    try:
        require_extra("matplotlib", "the benchmark's plotting", "benchmark")
    except RecBoleDienError as error:
        return report(parser, error)
    import yaml

    from recbole_dien.config.parsing import SettingsLoader

    overrides = {"stopping_step": CONVERGED_STOPPING_STEP}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or key in RESERVED_SETTINGS:
            reason = f"set by the runner; use {RESERVED_SETTINGS[key]}" if sep else "expected KEY=VALUE"
            return report(parser, f"--set {item}: {reason}")
        try:  # YAML's safe loader, aliases bounded
            overrides[key] = yaml.load(value, Loader=SettingsLoader)
        except (yaml.YAMLError, RecBoleDienError) as error:
            return report(parser, f"--set {item}: {str(error).splitlines()[0]}")
    run_suite(
        models=args.models,
        protocols=args.protocols or (["default"] if args.quick else PROTOCOLS),
        seeds=args.seeds or (DEFAULT_SEEDS[:1] if args.quick else DEFAULT_SEEDS),
        epochs=args.epochs or (1 if args.quick else CONVERGED_EPOCHS),
        dataset=args.dataset, out_dir=args.out, overrides=overrides, config_files=args.config_files,
        timeout=args.timeout, quick=args.quick, retry_failed=args.retry_failed,
        log=lambda line: print(line, flush=True),
    )
    print(f"wrote {Path(args.out) / 'runs.csv'}, {Path(args.out) / 'results.md'} and the plots", flush=True)
    return 0

