"""The metric the plugin adds to RecBole's evaluator: ``LabeledGAUC``.

RecBole's ``GAUC`` is a ranking metric (the rank of each user's positives among all scored
items), so it cannot be used with labeled data, where RecBole allows only value metrics. The DIN
paper's GAUC (eq. 1) is a value metric over labeled impressions,

.. math:: \\mathrm{GAUC} = \\frac{\\sum_u w_u \\, \\mathrm{AUC}_u}{\\sum_u w_u},

with :math:`w_u` the number of the user's impressions (rows); a user whose rows all carry one label
has no AUC and is left out. ``register()`` (run when ``recbole_dien`` is imported) adds it to
RecBole's metric registry as ``LabeledGAUC`` and makes RecBole's collector keep the user ids it needs.
"""
import numpy as np
from recbole.evaluator import collector, register as metric_registry
from recbole.evaluator.base_metric import AbstractMetric
from recbole.utils import EvaluatorType
from scipy.stats import rankdata

USER_KEY = "data.user"


def grouped_auc(users, labels, scores):
    """Impression-weighted mean of per-user AUC (ties count one half); NaN if no user has both labels."""
    order = np.argsort(users, kind="stable")
    users, labels, scores = users[order], labels[order], scores[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    total, weight = 0.0, 0
    for user_labels, user_scores in zip(np.split(labels, starts[1:]), np.split(scores, starts[1:])):
        positives = int(user_labels.sum())
        negatives = len(user_labels) - positives
        if positives == 0 or negatives == 0:
            continue
        ranks = rankdata(user_scores)  # ascending, ties averaged
        auc = (ranks[user_labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives)
        total += len(user_labels) * auc
        weight += len(user_labels)
    return total / weight if weight else float("nan")


class LabeledGAUC(AbstractMetric):
    """The DIN paper's GAUC over labeled rows (see the module docstring)."""

    metric_type = EvaluatorType.VALUE
    metric_need = ["rec.score", "data.label", USER_KEY]
    smaller = False

    def calculate_metric(self, dataobject):
        scores = dataobject.get("rec.score").numpy().astype(np.float64)
        labels = dataobject.get("data.label").numpy().astype(np.int64)
        users = dataobject.get(USER_KEY).numpy()
        return {"labeledgauc": round(grouped_auc(users, labels, scores), self.decimal_place)}


def _collect_users(eval_batch_collect):
    def wrapper(self, scores_tensor, interaction, positive_u, positive_i):
        eval_batch_collect(self, scores_tensor, interaction, positive_u, positive_i)
        if self.register.need(USER_KEY):
            self.data_struct.update_tensor(USER_KEY, interaction[self.config["USER_ID_FIELD"]].to(self.device))
    wrapper._recbole_dien = True
    return wrapper


def _reset_users(get_data_struct):
    def wrapper(self):
        returned = get_data_struct(self)
        if USER_KEY in self.data_struct:  # like RecBole's own per-evaluation keys
            del self.data_struct[USER_KEY]
        return returned
    wrapper._recbole_dien = True
    return wrapper


def register():
    """Add ``LabeledGAUC`` to RecBole's metrics (idempotent)."""
    name = LabeledGAUC.__name__.lower()
    metric_registry.metrics_dict[name] = LabeledGAUC
    metric_registry.metric_types[name] = LabeledGAUC.metric_type
    metric_registry.metric_information[name] = LabeledGAUC.metric_need
    Collector = collector.Collector
    if not getattr(Collector.eval_batch_collect, "_recbole_dien", False):
        Collector.eval_batch_collect = _collect_users(Collector.eval_batch_collect)
        Collector.get_data_struct = _reset_users(Collector.get_data_struct)
