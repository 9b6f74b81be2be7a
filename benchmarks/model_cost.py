"""What a batch and an evaluation pass cost, and how that grows with MAX_ITEM_LIST_LENGTH.

    python benchmarks/model_cost.py                          # DIN DIEN DSIN at lengths 50 100 200, full sort at 50
    python benchmarks/model_cost.py --models DIEN --lengths 50 200 --rounds 5 --full-sort-models
    python benchmarks/model_cost.py --output benchmarks/results/performance.json

For each model and history length, on ml-100k under the default protocol: the mean seconds (and
minor page faults) of a training step (forward, backward, Adam) over the same ``--batches``
training batches after ``--warmup`` untimed ones (malloc's heap grows over the first steps, more
at longer histories: a step that faults its memory in is not the steady cost of an epoch), the
real behaviours in those batches (the sum of the rows' history lengths) and the positions they
would take padded, and the seconds of one validation pass (uni100); all of it ``--rounds`` times,
the lengths alternating, and the medians reported (the same measurement varies by 10-25% on a
shared 2-core machine, more than the growths compared). Then, under the full-sort protocol (943
users x 1,682 items), the seconds of one validation pass per model. The growth from the first
length to the last is reported for the cost and for the real behaviours: the work should follow
the behaviours, not the padding.

Weights are as initialised (cost does not depend on them); one process, one model at a time, on
whatever cores torch uses. Run nothing else meanwhile (``recbole-dien benchmark --pause``
pauses a running benchmark suite while this runs).
"""
import argparse
import json
import platform
import resource
import statistics
import time

import torch


SETTINGS = {}  # --set KEY=VALUE, applied to every run


def pipeline(model, length, protocol=None, batch_size=None):
    from recbole.data import data_preparation
    from recbole.utils import get_trainer, init_seed

    from recbole_dien import Config, create_dataset

    settings = {"MAX_ITEM_LIST_LENGTH": length, "show_progress": False, "state": "WARNING", "seed": 2020, **SETTINGS}
    if protocol:
        settings["protocol"] = protocol
    if batch_size:
        settings["train_batch_size"] = batch_size
    config = Config(model, "ml-100k", config_dict=settings, cmd_args=[])
    init_seed(config["seed"], config["reproducibility"])
    train, valid, test = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], config["reproducibility"])
    net = config.model_class(config, train._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    return config, trainer, train, valid


def peak_gb():
    """This process's peak resident memory so far, GB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def build_then_train(model, dataset, settings, config_files=(), train_batches=20):
    """A run's dataset build and its first training steps, as a run does them: ``Config``,
    ``create_dataset`` and RecBole's ``data_preparation`` (timed: ``build_s``, and the peak memory
    at the end of the build, ``build_peak_gb``), then the model and ``train_batches`` training
    steps (forward, backward, Adam; batch building included) after one warm-up step
    (``train_rows_s``; fewer steps when the epoch ends first). Returns (measurements, config,
    train_data, valid_data, model)."""
    import tempfile

    from recbole.data import data_preparation
    from recbole.utils import init_seed

    from recbole_dien import Config, create_dataset
    from recbole_dien.benchmark.harness import print_phase
    from recbole_dien.trainer import allocator

    settings = {"show_progress": False, "state": "WARNING", "seed": 2020, "checkpoint_dir": tempfile.mkdtemp(),
                **settings}
    print_phase("build")
    start = time.perf_counter()
    config = Config(model, dataset, config_file_list=list(config_files), config_dict=settings, cmd_args=[])
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, _ = data_preparation(config, create_dataset(config))
    build_s, build_peak = time.perf_counter() - start, peak_gb()

    print_phase("train")
    net = config.model_class(config, train_data._dataset)
    allocator.apply(config)  # what a RecBole trainer does when it is built
    optimizer = torch.optim.Adam(net.parameters(), lr=config["learning_rate"])
    net.train()
    rows, timed, started = 0, 0, None
    for step, batch in enumerate(train_data):
        if step == 1:  # the first batch warms up
            started = time.perf_counter()
        optimizer.zero_grad()
        net.calculate_loss(batch).backward()
        optimizer.step()
        if step:
            rows, timed = rows + len(batch), timed + 1
        if timed == train_batches:
            break
    if not timed:
        raise RuntimeError(f"one training batch only ({len(train_data.dataset)} rows): nothing to time after the warm-up")
    measurements = {"build_s": round(build_s, 3), "build_peak_gb": round(build_peak, 2),
                    "train_rows_s": round(rows / (time.perf_counter() - started)), "train_batches": timed}
    return measurements, config, train_data, valid_data, net


def seconds(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def timed_training_steps(trainer, train, warmup, batches):
    """Run ``warmup`` untimed, then ``batches`` timed training steps (forward, backward, Adam) on
    the first batches of ``train``; for each timed step: its seconds, its minor page faults and
    its batch. Loading a batch is outside the timing."""
    model, optimizer = trainer.model, trainer.optimizer
    model.train()
    steps, seen = [], 0
    for index, batch in enumerate(train):
        if index == warmup + batches:
            break
        seen += 1
        interaction = batch[0] if isinstance(batch, tuple) else batch
        faults, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        optimizer.zero_grad()
        model.calculate_loss(interaction).backward()
        optimizer.step()
        if index >= warmup:
            steps.append({"seconds": time.perf_counter() - start, "interaction": interaction,
                          "page_faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults})
    if not steps:
        raise SystemExit(f"{type(model).__name__}: {seen} training batches, not more than the {warmup} warm-up "
                         "steps; ask for fewer warm-up steps")
    return steps


def training_step_cost(trainer, train, batches, warmup):
    """Mean seconds and minor page faults of a training step over ``batches`` batches after
    ``warmup`` untimed ones, and the timed batches' real and padded behaviours."""
    steps = timed_training_steps(trainer, train, warmup=warmup, batches=batches)
    model = trainer.model
    lengths = torch.cat([step["interaction"][model.ITEM_SEQ_LEN] for step in steps])
    padded = sum(step["interaction"][model.ITEM_SEQ].numel() for step in steps)
    return {"step_s": sum(step["seconds"] for step in steps) / len(steps),
            "page_faults_per_step": sum(step["page_faults"] for step in steps) / len(steps),
            "real_behaviours": int(lengths.sum()), "padded_positions": padded}


def measure_lengths(models, lengths, batches, warmup, rounds, log):
    """Training step and validation pass of each model at each length, measured ``rounds`` times
    (each round builds the pipelines afresh, every other one takes the lengths in reverse order so
    that a drift of the machine reaches all of them); a row holds each round's seconds and, as
    ``step_s`` and ``valid_pass_s``, their medians."""
    samples = {}
    for round_index in range(rounds):
        for model in models:
            for length in lengths if round_index % 2 == 0 else lengths[::-1]:
                config, trainer, train, valid = pipeline(model, length)
                sample = {"model": model, "length": length, **training_step_cost(trainer, train, batches, warmup)}
                sample["valid_pass_s"] = seconds(lambda: trainer.evaluate(valid, load_best_model=False,
                                                                          show_progress=False))
                log(json.dumps({"round": round_index + 1, **sample}))
                samples.setdefault((model, length), []).append(sample)
    rows = []
    for model in models:
        for length in lengths:
            taken = samples[(model, length)]
            row = dict(taken[0])
            for measure in ("step_s", "valid_pass_s", "page_faults_per_step"):
                row[measure] = statistics.median(sample[measure] for sample in taken)
            row["step_s_rounds"] = [sample["step_s"] for sample in taken]
            row["valid_pass_s_rounds"] = [sample["valid_pass_s"] for sample in taken]
            rows.append(row)
    return rows


def measure_full_sort(models, log):
    rows = []
    for model in models:
        config, trainer, train, valid = pipeline(model, 50, protocol="fullsort")
        trainer.model.eval()
        pass_s = seconds(lambda: trainer.evaluate(valid, load_best_model=False, show_progress=False))
        row = {"model": model, "full_sort_pass_s": pass_s, "users": int(valid._dataset.user_num - 1),
               "items": int(valid._dataset.item_num - 1)}
        log(json.dumps(row))
        rows.append(row)
    return rows


def markdown(length_rows, full_sort_rows):
    lines = ["| model | MAX_ITEM_LIST_LENGTH | train step s | page faults per step | real behaviours (timed batches) "
             "| padded positions (timed batches) | valid pass s (uni100) |", "|---|---|---|---|---|---|---|"]
    batches = {}
    for r in length_rows:
        batches.setdefault(r["model"], []).append(r)
    for model, rows in batches.items():
        for r in rows:
            lines.append(f"| {model} | {r['length']} | {r['step_s']:.3f} | {r['page_faults_per_step']:,.0f} "
                         f"| {r['real_behaviours']:,} "
                         f"| {r['padded_positions']:,} | {r['valid_pass_s']:.1f} |")
    lines += ["", "| model | step cost growth | real behaviours growth | padded growth | valid pass growth |",
              "|---|---|---|---|---|"]
    for model, rows in batches.items():
        first, last = rows[0], rows[-1]
        lines.append(f"| {model} ({first['length']} → {last['length']}) | {last['step_s'] / first['step_s']:.2f}× "
                     f"| {last['real_behaviours'] / first['real_behaviours']:.2f}× "
                     f"| {last['padded_positions'] / first['padded_positions']:.2f}× "
                     f"| {last['valid_pass_s'] / first['valid_pass_s']:.2f}× |")
    if full_sort_rows:
        lines += ["", "| model | one full-sort pass s (users x items) |", "|---|---|"]
        lines += [f"| {r['model']} | {r['full_sort_pass_s']:.1f} ({r['users']} x {r['items']}) |" for r in full_sort_rows]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["DIN", "DIEN", "DSIN"])
    parser.add_argument("--lengths", nargs="*", type=int, default=[50, 100, 200], help="none: skip")
    parser.add_argument("--batches", type=int, default=16, help="training batches timed per model and length")
    parser.add_argument("--rounds", type=int, default=3,
                        help="measurements per model and length (fresh pipelines; the medians are reported)")
    parser.add_argument("--warmup", type=int, default=8,
                        help="untimed training steps first (the allocator's heap grows over the first few)")
    parser.add_argument("--full-sort-models", nargs="*", default=["DIN", "DIEN"],
                        help="models whose full-sort validation pass is timed (none: skip)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for every run (YAML value), e.g. --set full_sort_chunk_elements=16777216")
    parser.add_argument("--output", help="also write the measurements here (JSON)")
    args = parser.parse_args(argv)
    if args.warmup < 0 or args.batches < 1 or args.rounds < 1:
        parser.error("--warmup must be >= 0, --batches and --rounds >= 1")
    import yaml

    for item in args.set:
        key, _, value = item.partition("=")
        SETTINGS[key] = yaml.safe_load(value)

    import recbole_dien  # noqa: F401 - the RecBole shims

    length_rows = measure_lengths(args.models, args.lengths, args.batches, args.warmup, args.rounds, print) if args.lengths else []
    full_sort_rows = measure_full_sort(args.full_sort_models, print)
    print(markdown(length_rows, full_sort_rows))
    if args.output:
        record = {"date": time.strftime("%Y-%m-%d"), "settings": SETTINGS, "machine": f"{platform.processor() or platform.machine()}, "
                  f"{torch.get_num_threads()} torch threads", "torch": torch.__version__,
                  "warmup": args.warmup, "batches": args.batches, "rounds": args.rounds, "lengths": length_rows, "full_sort": full_sort_rows}
        with open(args.output, "w") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
