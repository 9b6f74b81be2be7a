"""LabeledGAUC: the DIN paper's GAUC over labeled rows, inside RecBole's evaluator."""
import itertools
import math

import numpy as np
import pytest
import torch
from recbole.utils import get_trainer

from recbole_dien.evaluator.metrics import grouped_auc


def pairwise_gauc(users, labels, scores):
    """Slow reference: per user, the share of (click, non-click) pairs ordered right (ties 1/2),
    weighted by the user's rows."""
    total = weight = 0.0
    for user in set(users.tolist()):
        rows = users == user
        pos, neg = scores[rows & (labels == 1)], scores[rows & (labels == 0)]
        if len(pos) == 0 or len(neg) == 0:
            continue
        wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
        total += rows.sum() * wins / (len(pos) * len(neg))
        weight += rows.sum()
    return total / weight


def test_grouped_auc_matches_pairwise_reference_with_ties_and_one_label_users():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 30, size=400)
    labels = rng.integers(0, 2, size=400)
    labels[users == 3] = 1  # a user with clicks only: no AUC, left out
    scores = rng.integers(0, 5, size=400) / 4.0  # many ties
    assert grouped_auc(users, labels, scores) == pytest.approx(pairwise_gauc(users, labels, scores))


def test_grouped_auc_weights_users_by_rows_and_is_nan_without_both_labels():
    users = np.array([1, 1, 2, 2, 2, 2])
    labels = np.array([1, 0, 1, 0, 0, 1])
    scores = np.array([0.9, 0.1, 0.2, 0.8, 0.7, 0.1])  # user 1 AUC 1, user 2 AUC 0
    assert grouped_auc(users, labels, scores) == pytest.approx((2 * 1.0 + 4 * 0.0) / 6)
    assert math.isnan(grouped_auc(users, np.ones(6, dtype=int), scores))


def test_labeled_protocol_reports_labeled_gauc_of_the_test_rows(tiny_pipeline):
    config, train_data, valid_data, test_data = tiny_pipeline(
        "DIN", threshold={"rating": 4}, train_neg_sample_args=None,
        eval_args={"split": {"RS": [0.6, 0.2, 0.2]}, "order": "TO", "group_by": "user", "mode": "labeled"},
        metrics=["AUC", "LabeledGAUC", "LogLoss"])
    model = config.model_class(config, train_data._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trainer.fit(train_data, valid_data, saved=False, show_progress=False)
    first = trainer.evaluate(test_data, load_best_model=False)
    second = trainer.evaluate(test_data, load_best_model=False)  # user ids must not pile up
    assert set(first) == {"auc", "labeledgauc", "logloss"} and first == second

    model.eval()
    users, labels, scores = [], [], []
    with torch.no_grad():
        for batch, *_ in test_data:
            users.append(batch[config["USER_ID_FIELD"]])
            labels.append(batch[config["LABEL_FIELD"]])
            scores.append(model.predict(batch))
    expected = grouped_auc(torch.cat(users).numpy(), torch.cat(labels).long().numpy(), torch.cat(scores).numpy())
    assert first["labeledgauc"] == pytest.approx(expected, abs=1e-4)
