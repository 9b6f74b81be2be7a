"""Hyper-parameter search with RecBole's ``HyperTuning``, offline and without ray.

    python run_hyper.py --model=DIEN --dataset=ml-100k --params_file=hyper/DIEN.hyper --max_evals=20 --tool=random
    python run_hyper.py --model=DIN --config_files=my.yaml --params_file=my_choices.hyper --tool=exhaustive

RecBole's own ``objective_function`` resolves the model name with RecBole's ``get_model`` (so it
cannot build the plugin's models) and reports to ray. :func:`objective_function` has its signature,
builds every model through :func:`recbole_dien.quick_start.run_single` (plugin-first lookup,
validated settings, the plugin's datasets) and returns RecBole's result dict. RecBole's
``HyperTuning`` (``hyperopt``: ``pip install -e ".[tune]"``) runs the search unchanged.

``--params_file`` is RecBole's format, one knob per line: ``name choice [a, b]``,
``name uniform low,high``, ``name loguniform low,high`` (natural logs of the bounds) or
``name quniform low,high,q``; ``hyper/<Model>.hyper`` holds a space per model. The output:
RecBole's result file (``--output_file``, by default ``saved/tune/<Model>-<dataset>.result``) and,
beside it, ``<output_file>.md``, the trials as a markdown table, best first.

RecBole reads a ``choice`` line's values with ``eval``, so a crafted space file ran code;
:func:`build_space_from_file` reads them as Python literals (``ast.literal_eval``) and
:mod:`recbole_dien.compat` installs it on RecBole's ``HyperTuning``.
"""
import argparse
import ast
import logging
import os

from recbole_dien.utils.errors import ConfigError, RecBoleDienError, report

TOOLS = ("exhaustive", "random", "bayes")
OUTPUT_DIR = os.path.join("saved", "tune")


def build_space_from_file(file):
    """``HyperTuning._build_space_from_file`` without ``eval``: RecBole's format, line by line (see
    the module docstring); one :class:`ConfigError` line naming the file and line for a value that
    is not a literal or a bound that is not a number."""
    from hyperopt import hp

    bounded = {"uniform": (hp.uniform, 2), "quniform": (hp.quniform, 3), "loguniform": (hp.loguniform, 2)}
    space = {}
    with open(file, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            parts = line.strip().split(" ")
            if len(parts) < 3:
                continue
            name, kind, text = parts[0], parts[1], "".join(parts[2:])
            where = f"params file {file}, line {number}"
            if kind == "choice":
                try:
                    values = ast.literal_eval(text)
                except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                    raise ConfigError(f"{where}: {text!r} is not a list of values (write e.g. [0.001,0.01] or "
                                      "['a','b']; values are read as Python literals, never evaluated)") from None
                if not isinstance(values, (list, tuple)) or not values:
                    raise ConfigError(f"{where}: choice takes a non-empty list, got {text!r}")
                space[name] = hp.choice(name, list(values))
            elif kind in bounded:
                function, count = bounded[kind]
                try:
                    bounds = [float(bound) for bound in text.split(",")]
                except ValueError:
                    bounds = []
                if len(bounds) != count:
                    raise ConfigError(f"{where}: {kind} takes {count} numbers separated by commas, got {text!r}")
                space[name] = function(name, *bounds)
            else:
                raise ConfigError(f"{where}: unknown kind '{kind}' (use choice, uniform, quniform or loguniform)")
    return space


def objective_function(config_dict=None, config_file_list=None, saved=True):
    """RecBole's objective function signature: train, validate and test one trial. The model and
    dataset come from ``config_dict`` (``model``, ``dataset``) or the config files."""
    from recbole_dien.quick_start import run_single

    # hyperopt's quniform draws floats: 64.0 is the int knob 64
    settings = {key: int(value) if isinstance(value, float) and value.is_integer() and key != "learning_rate"
                else value for key, value in (config_dict or {}).items()}
    model, dataset = settings.pop("model", None), settings.pop("dataset", None)
    settings.setdefault("show_progress", False)
    result = run_single(model, dataset, config_file_list, settings, cmd_args=[], saved=saved)
    config = result.pop("config")
    result.pop("saved_model_file", None)
    return {"model": config["model"], **result}


def require_hyperopt():
    try:
        import hyperopt  # noqa: F401
    except ImportError:
        raise ConfigError('hyper-parameter search needs hyperopt: pip install -e ".[tune]"') from None


def trials_markdown(tuner):
    """The trials of a finished ``HyperTuning`` as a markdown table, best validation score first."""
    trials = list(tuner.params2result.items())
    if not trials:
        return "no trial finished\n"
    bigger = trials[0][1]["valid_score_bigger"]
    trials.sort(key=lambda item: item[1]["best_valid_score"], reverse=bigger)
    valid_keys = list(trials[0][1]["best_valid_result"] or {})
    test_keys = list(trials[0][1]["test_result"] or {})
    header = ["rank", "parameters"] + [f"valid {k}" for k in valid_keys] + [f"test {k}" for k in test_keys]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, (params, result) in enumerate(trials, 1):
        valid = [f"{float(result['best_valid_result'][k]):.4f}" for k in valid_keys]
        test = [f"{float(result['test_result'][k]):.4f}" for k in test_keys]
        lines.append("| " + " | ".join([str(rank), f"`{params}`"] + valid + test) + " |")
    return "\n".join(lines) + "\n"


def default_output_file(model, dataset):
    return os.path.join(OUTPUT_DIR, f"{model}-{dataset}.result")


def tune(model, dataset, params_file, config_files=None, settings=None, tool="exhaustive", max_evals=100,
         early_stop=10, output_file=None):
    """Run a search; returns the ``HyperTuning`` object (``best_params``, ``params2result``) after
    writing ``output_file`` (default: ``saved/tune/<model>-<dataset>.result``) and ``output_file + '.md'``."""
    output_file = output_file or default_output_file(model, dataset)
    require_hyperopt()
    from recbole.trainer import HyperTuning

    if tool not in TOOLS:
        raise ConfigError(f"--tool={tool}: use one of {', '.join(TOOLS)}")
    try:
        open(params_file).close()
    except OSError:
        raise ConfigError(f"params file {params_file} cannot be read (see hyper/<Model>.hyper for the format)") from None
    fixed = {**(settings or {}), "model": model, "dataset": dataset}

    def objective(config_dict, config_file_list, saved=True):
        return objective_function({**fixed, **config_dict}, config_file_list, saved)

    tuner = HyperTuning(objective, space=build_space_from_file(params_file), algo=tool, early_stop=early_stop,
                        max_evals=max_evals, fixed_config_file_list=config_files)
    tuner.run()
    os.makedirs(os.path.dirname(output_file) or ".", exist_ok=True)
    tuner.export_result(output_file=output_file)
    with open(f"{output_file}.md", "w") as f:
        f.write(f"# {model} on {dataset}: {len(tuner.params2result)} trials ({tool}), best first\n\n")
        f.write(trials_markdown(tuner))
    return tuner


def main(argv=None, prog="recbole-dien tune"):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", default="DIEN")
    parser.add_argument("--dataset", "-d", default="ml-100k")
    parser.add_argument("--config_files", default=None, help="space-separated YAML config files")
    parser.add_argument("--params_file", default=None, help="search space (default: hyper/<model>.hyper)")
    parser.add_argument("--output_file", default=None,
                        help="RecBole's result file; its .md beside it (default: saved/tune/<model>-<dataset>.result)")
    parser.add_argument("--max_evals", type=int, default=20, help="trials at most (random, bayes)")
    parser.add_argument("--tool", default="random",
                        help=f"search algorithm: {', '.join(TOOLS)} (exhaustive: every combination of the choice "
                             "knobs, ignoring --max_evals; for spaces of choice lines only)")
    parser.add_argument("--early_stop", type=int, default=10, help="stop after this many trials without progress")
    args, overrides = parser.parse_known_args(argv)
    from recbole_dien.config import parse_overrides

    try:
        settings = {key: _literal(value) for key, value in parse_overrides(overrides).items()}
    except ConfigError as error:
        parser.error(str(error))
    try:
        params_file = args.params_file or _default_space(args.model)
        tuner = tune(args.model, args.dataset, params_file, args.config_files.split() if args.config_files else None,
                     settings, args.tool, args.max_evals, args.early_stop, args.output_file)
    except RecBoleDienError as error:
        return report(parser, error)
    logging.getLogger().info(f"best parameters: {tuner.best_params}")
    print(f"best parameters: {tuner.best_params}")
    output_file = args.output_file or default_output_file(args.model, args.dataset)
    print(f"wrote {output_file} and {output_file}.md")
    return 0


def _literal(value):
    """A --key=value override typed as the run command types it (literals; else the string)."""
    from recbole_dien.config.parsing import parse_value

    return parse_value(value)


def _default_space(model):
    from recbole_dien.utils.resources import hyper_file

    path = hyper_file(model)
    if path is None:
        raise ConfigError(f"there is no hyper/{model}.hyper: give a search space with --params_file")
    return str(path)

