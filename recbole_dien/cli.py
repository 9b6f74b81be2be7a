"""``run_recbole.py`` / ``recbole-dien``: train and test a model, RecBole-style, with this package's models first."""
import argparse
import os
import sys

DEFAULT_MODEL = "DIEN"
DEFAULT_DATASET = "ml-100k"


def build_parser(prog=None):
    parser = argparse.ArgumentParser(
        prog=prog or os.path.basename(sys.argv[0]) or "run_recbole.py",
        description="Train, validate and test a recommender with RecBole; DIN, DIEN and DSIN are "
                    "recbole-dien's models, recbole.DIN and recbole.DIEN RecBole's own, any other name "
                    "(GRU4Rec, SASRec, ...) RecBole's.",
        epilog="Any other option --key=value overrides a RecBole / model setting, e.g. "
               "--epochs=1 --train_batch_size=1024 --attention_softmax=True.",
    )
    parser.add_argument("--model", "-m", default=None, help=f"model name (default: {DEFAULT_MODEL})")
    parser.add_argument("--dataset", "-d", default=None, help=f"dataset name (default: {DEFAULT_DATASET})")
    parser.add_argument("--config_files", default=None, help="space-separated YAML config files")
    parser.add_argument("--resume", default=None, metavar="CHECKPOINT",
                        help="continue the run a checkpoint (saved/<Model>-<date>.pth) comes from, after its last "
                             "completed epoch; only --epochs, --stopping_step and --show_progress may change")
    parser.add_argument("--nproc", type=int, default=1, help="processes for distributed training on this machine")
    parser.add_argument("--ip", default="localhost", help="master address for distributed training")
    parser.add_argument("--port", default="5678", help="master port for distributed training")
    parser.add_argument("--world_size", type=int, default=-1, help="total processes across machines")
    parser.add_argument("--group_offset", type=int, default=0, help="rank offset of this machine")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, overrides = parser.parse_known_args(argv)
    from recbole_dien.config import parse_overrides  # after --help, which needs no torch import
    from recbole_dien.errors import ConfigError

    try:
        parse_overrides(overrides)
    except ConfigError as error:
        parser.error(str(error))
    if args.resume and (args.model or args.dataset or args.config_files):
        parser.error("--resume takes the model, dataset and settings from the checkpoint; "
                     "leave out --model, --dataset and --config_files")

    from recbole_dien import run
    from recbole_dien.errors import RecBoleDienError, report

    try:
        result = run(
            args.model or DEFAULT_MODEL, args.dataset or DEFAULT_DATASET,
            config_file_list=args.config_files.split() if args.config_files else None,
            cmd_args=overrides, nproc=args.nproc, world_size=args.world_size,
            ip=args.ip, port=args.port, group_offset=args.group_offset, resume=args.resume,
        )
    except RecBoleDienError as error:
        return report(parser, error)
    if result is not None:
        print(f"best valid: {dict(result['best_valid_result'] or {})}")
        print(f"test result: {dict(result['test_result'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
