"""Heatmap of a trained model's attention for one user and a handful of candidate items.

    recbole-dien plot saved/DIEN-....pth --user 196 --output dien-attention.png
    recbole-dien plot saved/DIN-....pth --user 196 --items 242 302 377 51

The user's history is the one their test target is scored with (the model's input for the last
interaction). Rows are the candidates (by default the test target and four items the user never
rated, drawn with the config's seed), columns the behaviours (DIN: the attention unit's weights;
DIEN: the attention on each interest state that steers the AUGRU) or the sessions (DSIN: oldest kept
session first; one panel for the session interests, one for the Bi-LSTM states). Cells hold the
weights the model uses, so DIN's (not normalised, as in the paper) need not sum to one.
"""
import argparse

import numpy as np
import torch
from recbole.data.interaction import Interaction

from recbole_dien.utils.errors import RecBoleDienError, report, require_extra
from recbole_dien.serving.export import refuse_behaviour_log
from recbole_dien.serving.recommend import seen_items


def user_row(dataset_split, dataset, user_token):
    """The (last) row of ``user_token`` in a split: the model input its target was scored with."""
    uid_field = dataset.uid_field
    try:
        uid = dataset.token2id(uid_field, str(user_token))
    except ValueError:
        raise RecBoleDienError(f"user '{user_token}' is not in the dataset") from None
    rows = torch.nonzero(dataset_split.inter_feat[uid_field] == uid).flatten()
    if len(rows) == 0:
        raise RecBoleDienError(f"user '{user_token}' has no test interaction")
    return dataset_split.__getitem__(rows[-1:], join=False)  # as the model input: features are looked up by id


def default_candidates(row, dataset, count, seed):
    """The row's target and ``count`` items the user never interacted with."""
    rated = seen_items(dataset, row[dataset.uid_field][:1])[0]
    unrated = np.flatnonzero(~rated[1:].numpy()) + 1  # ascending, without the padding id
    picked = np.random.default_rng(seed).choice(unrated, size=min(count, len(unrated)), replace=False)
    return [int(row[dataset.iid_field][0])] + sorted(picked.tolist())


@torch.no_grad()
def attention_for(model, row, candidates):
    """Attention weights (name -> [N, positions]) and click probabilities [N] of each candidate."""
    batch = row.repeat(len(candidates))
    device = row[model.ITEM_ID].device
    batch.update(Interaction({model.ITEM_ID: torch.tensor(candidates, dtype=torch.long, device=device)}))
    model.eval()
    weights = {name: w.cpu().numpy() for name, w in model.attention_weights(batch).items()}
    return weights, model.predict(batch).cpu().numpy()


def column_labels(model, row, dataset):
    """Labels of the columns: the behaviours' item tokens, or the sessions of DSIN's grid."""
    if hasattr(model, "session_grid"):
        items, behaviour_mask, recency, _, _ = model.session_grid(row)
        labels = []
        for k in range(items.shape[1]):
            if recency[0, k] < 0:
                labels.append("(empty)")
                continue
            n = int(behaviour_mask[0, k].sum())
            age = "latest" if recency[0, k] == 0 else f"-{int(recency[0, k])}"
            labels.append(f"session {age} ({n} items)")
        return labels
    length = int(row[model.ITEM_SEQ_LEN][0])
    tokens = dataset.id2token(dataset.iid_field, row[model.ITEM_SEQ][0, :length].cpu().numpy())
    return [str(t) for t in tokens]


def draw(weights, probabilities, candidate_labels, columns, title, output):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(weights.items())
    width = max(6.0, 0.22 * len(columns) + 3)
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, 2.4 + 0.45 * len(candidate_labels) * len(panels)),
                             squeeze=False)
    rows = [f"{label}  p={p:.2f}" for label, p in zip(candidate_labels, probabilities)]
    for ax, (name, matrix) in zip(axes[:, 0], panels):
        shown = matrix[:, :len(columns)]
        image = ax.imshow(shown, aspect="auto", cmap="viridis")
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(rows, fontsize=8)
        ax.set_xticks(range(len(columns)))
        ax.set_xticklabels(columns, rotation=90, fontsize=7)
        ax.set_title(f"{title}: {name}", fontsize=10)
        fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01)
    axes[-1, 0].set_xlabel("history, oldest first")
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)


def plot_attention(checkpoint, user, items=None, output="attention.png", count=4):
    """Load ``checkpoint``, score ``items`` (raw tokens; default: test target + ``count`` unrated
    items) for ``user``, draw the heatmap to ``output``; returns (weights, probabilities)."""
    from recbole_dien.quick_start import load_data_and_model

    require_extra("matplotlib", "drawing", "benchmark")  # before the model loads: a missing extra costs nothing
    config, model, dataset, _, _, test_data = load_data_and_model(checkpoint)
    if not hasattr(model, "attention_weights"):
        raise RecBoleDienError(f"{type(model).__name__} has no attention weights to draw (DIN, DIEN and DSIN do)")
    refuse_behaviour_log(model)
    row = user_row(test_data._dataset, dataset, user)
    if items:
        try:
            candidates = [int(dataset.token2id(dataset.iid_field, str(item))) for item in items]
        except ValueError as error:
            raise RecBoleDienError(f"unknown item: {error}") from None
    else:
        candidates = default_candidates(row, dataset, count, config["seed"])
    row = row.to(config["device"])
    weights, probabilities = attention_for(model, row, candidates)
    target = int(row[dataset.iid_field][0])
    tokens = dataset.id2token(dataset.iid_field, np.array(candidates))
    labels = [f"item {t}" + (" (test target)" if c == target else "") for t, c in zip(tokens, candidates)]
    title = f"{config['model']} on {config['dataset']}, user {user}"
    draw(weights, probabilities, labels, column_labels(model, row, dataset), title, output)
    return weights, probabilities


def main(argv=None, prog="recbole-dien plot"):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint written by run_recbole.py (saved/<Model>-<date>.pth)")
    parser.add_argument("--user", required=True, help="the user's token in the dataset (e.g. 196 on ml-100k)")
    parser.add_argument("--items", nargs="+", help="candidate item tokens (default: the test target + --count unrated)")
    parser.add_argument("--count", type=int, default=4, help="unrated candidates drawn when --items is not given")
    parser.add_argument("--output", default="attention.png")
    args = parser.parse_args(argv)
    try:
        plot_attention(args.checkpoint, args.user, args.items, args.output, args.count)
    except RecBoleDienError as error:
        return report(parser, error)
    print(f"wrote {args.output}")
    return 0

