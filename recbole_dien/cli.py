"""``run_recbole.py``: train and test a model, RecBole-style, with this package's models first."""
import argparse
import sys

DEFAULT_MODEL = "DIEN"
DEFAULT_DATASET = "ml-100k"


def build_parser():
    parser = argparse.ArgumentParser(
        prog="run_recbole.py",
        description="Train, validate and test a recommender with RecBole; DIN and DIEN are "
                    "recbole-dien's models, recbole.DIN and recbole.DIEN RecBole's own, any other name "
                    "(GRU4Rec, SASRec, ...) RecBole's.",
        epilog="Any other option --key=value overrides a RecBole / model setting, e.g. "
               "--epochs=1 --train_batch_size=1024 --attention_softmax=True.",
    )
    parser.add_argument("--model", "-m", default=DEFAULT_MODEL, help=f"model name (default: {DEFAULT_MODEL})")
    parser.add_argument("--dataset", "-d", default=DEFAULT_DATASET, help=f"dataset name (default: {DEFAULT_DATASET})")
    parser.add_argument("--config_files", default=None, help="space-separated YAML config files")
    parser.add_argument("--nproc", type=int, default=1, help="processes for distributed training (CUDA only)")
    parser.add_argument("--ip", default="localhost", help="master address for distributed training")
    parser.add_argument("--port", default="5678", help="master port for distributed training")
    parser.add_argument("--world_size", type=int, default=-1, help="total processes across machines")
    parser.add_argument("--group_offset", type=int, default=0, help="rank offset of this machine")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, overrides = parser.parse_known_args(argv)
    for arg in overrides:
        if not arg.startswith("--") or "=" not in arg:
            parser.error(f"unrecognised argument '{arg}': settings are written --key=value")

    from recbole_dien import run  # after --help, which needs no torch import
    from recbole_dien.errors import RecBoleDienError

    try:
        result = run(
            args.model, args.dataset,
            config_file_list=args.config_files.split() if args.config_files else None,
            cmd_args=overrides, nproc=args.nproc, world_size=args.world_size,
            ip=args.ip, port=args.port, group_offset=args.group_offset,
        )
    except RecBoleDienError as error:
        print(f"run_recbole.py: error: {error}", file=sys.stderr)
        return 2
    if result is not None:
        print(f"best valid: {dict(result['best_valid_result'])}")
        print(f"test result: {dict(result['test_result'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
