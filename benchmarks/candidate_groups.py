"""DIEN's training step with a history's candidates evolved together against one (history,
candidate) pair at a time, and how each grows with MAX_ITEM_LIST_LENGTH.

    python benchmarks/candidate_groups.py                     # lengths 50 and 200, 3 rounds
    python benchmarks/candidate_groups.py --lengths 50 100 200 --rounds 5 --output docs/candidate-groups-data.json

RecBole's point-wise training batch holds every history twice (its positive and its sampled
negative row). DIEN's ``score`` evolves the candidates of a history together, states [histories,
C, H] with the history's states, keys and input projections broadcast over its candidates
(``DIEN.group_candidates``, the default); with the switch off it copies them per pair, the
layout before. For each length, on ml-100k under the default protocol: the same ``--warmup`` +
``--batches`` training batches, loaded once, are trained from the same initial weights with
each layout, the two alternating in every round (the order flipped every other round), and the
mean seconds of the timed steps (forward, backward, Adam) recorded; the medians over the rounds
are reported, with the growth from the first length to the last. One process; run nothing else
meanwhile (``python -m recbole_dien.benchmark.pause`` pauses a running benchmark suite).
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_cost import pipeline  # noqa: E402


def mean_step_seconds(trainer, batches, warmup):
    model, optimizer = trainer.model, trainer.optimizer
    model.train()
    timed = []
    for index, interaction in enumerate(batches):
        start = time.perf_counter()
        optimizer.zero_grad()
        model.calculate_loss(interaction).backward()
        optimizer.step()
        if index >= warmup:
            timed.append(time.perf_counter() - start)
    return sum(timed) / len(timed)


def measure(lengths, rounds, warmup, batches, log):
    samples = {}
    for length in lengths:
        _, _, train, _ = pipeline("DIEN", length)
        loaded = [batch[0] if isinstance(batch, tuple) else batch for _, batch in zip(range(warmup + batches), train)]
        if len(loaded) <= warmup:
            raise SystemExit(f"{len(loaded)} training batches at length {length}, not more than --warmup {warmup}")
        for round_index in range(rounds):
            layouts = (True, False) if round_index % 2 == 0 else (False, True)
            for grouped in layouts:
                _, trainer, _, _ = pipeline("DIEN", length)   # the same initial weights (seed) each time
                trainer.model.group_candidates = grouped
                seconds = mean_step_seconds(trainer, loaded, warmup)
                log(json.dumps({"length": length, "round": round_index + 1, "grouped": grouped, "step_s": seconds}))
                samples.setdefault((length, grouped), []).append(seconds)
    return [{"length": length, "grouped": grouped, "step_s": statistics.median(taken), "step_s_rounds": taken}
            for (length, grouped), taken in samples.items()]


def markdown(rows, lengths):
    by_key = {(row["length"], row["grouped"]): row for row in rows}
    lines = ["| MAX_ITEM_LIST_LENGTH | per pair: step s (rounds) | grouped: step s (rounds) | speed-up |",
             "|---|---|---|---|"]
    for length in lengths:
        pair, grouped = by_key[(length, False)], by_key[(length, True)]
        rounds = [", ".join(f"{s:.3f}" for s in row["step_s_rounds"]) for row in (pair, grouped)]
        lines.append(f"| {length} | {pair['step_s']:.3f} ({rounds[0]}) | {grouped['step_s']:.3f} ({rounds[1]}) "
                     f"| {pair['step_s'] / grouped['step_s']:.2f}× |")
    first, last = lengths[0], lengths[-1]
    for grouped, name in ((False, "per pair"), (True, "grouped")):
        growth = by_key[(last, grouped)]["step_s"] / by_key[(first, grouped)]["step_s"]
        lines.append(f"\n{name}: growth {first} → {last} {growth:.2f}×")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", nargs="+", type=int, default=[50, 200])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--output", help="also write the measurements here (JSON)")
    args = parser.parse_args(argv)
    if args.warmup < 0 or args.batches < 1 or args.rounds < 1 or len(args.lengths) < 2:
        parser.error("--warmup must be >= 0, --batches and --rounds >= 1, and at least two --lengths given")

    import recbole_dien  # noqa: F401 - the RecBole shims

    rows = measure(args.lengths, args.rounds, args.warmup, args.batches, print)
    print(markdown(rows, args.lengths))
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "threads": torch.get_num_threads(),
                       "warmup": args.warmup, "batches": args.batches, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
