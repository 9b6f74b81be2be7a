"""Top-K recommendations from a checkpoint: RecBole's case study agrees, seen items are left out."""
import csv
import glob

import pytest
import torch
from recbole.utils.case_study import full_sort_topk

from recbole_dien import load_data_and_model, run
from recbole_dien.serving import recommend as recommend_module
from recbole_dien.serving.recommend import recommend, with_latest_behaviour


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data_path):
    """One checkpoint per model, trained one epoch on the tiny dataset under full-sort ranking."""
    root = tmp_path_factory.mktemp("recommend")
    paths = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # RecBole's logs
        for model in ("DIN", "DIEN", "DSIN"):
            paths[model] = train_one(model, root, tiny_data_path)
    return paths


def train_one(model, root, tiny_data_path):
    settings = {"data_path": tiny_data_path, "MAX_ITEM_LIST_LENGTH": 8, "epochs": 1, "show_progress": False,
                "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "year", "genre"]},
                "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
                "metrics": ["Hit", "NDCG"], "topk": [5], "valid_metric": "NDCG@5",
                "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
                "checkpoint_dir": str(root / model), "seed": 3}
    run(model, "tiny", config_dict=settings, cmd_args=[])
    (path,) = glob.glob(str(root / model / f"{model}-*.pth"))
    return path


@pytest.mark.parametrize("model", ["DIN", "DIEN", "DSIN"])
def test_the_test_history_gives_recboles_case_study_lists(trained, model):
    loaded = load_data_and_model(trained[model])
    config, net, dataset, _, _, test_data = loaded
    users = ["1", "4", "9", "24"]
    ours = recommend(loaded, users, topk=7, exclude_seen=False, history="test", batch_size=3)
    ids = dataset.token2id(dataset.uid_field, users)
    _, items = full_sort_topk(ids, net, test_data, k=7)
    theirs = dataset.id2token(dataset.iid_field, items.numpy())
    assert [items for _, items, _ in ours] == [list(map(str, row)) for row in theirs]


def test_recommendations_leave_out_seen_items_and_are_sorted(trained):
    loaded = load_data_and_model(trained["DIEN"])
    dataset = loaded[2]
    results = recommend(loaded, ["2", "11"], topk=10)
    rows = dataset[torch.arange(len(dataset))]
    for user, items, scores in results:
        uid = dataset.token2id(dataset.uid_field, user)
        mine = rows[dataset.uid_field] == uid
        # the user's whole log: its rows' targets and histories (the first interaction is only a history)
        seen_ids = set(rows[dataset.iid_field][mine].tolist()) | set(rows["item_id_list"][mine].flatten().tolist())
        seen = set(dataset.id2token(dataset.iid_field, sorted(seen_ids - {0})))
        assert len(items) == 10 and not set(items) & seen
        assert scores == sorted(scores, reverse=True)


def test_the_latest_history_ends_with_the_test_target(trained):
    config, _, _, _, _, test_data = load_data_and_model(trained["DSIN"])
    rows = test_data._dataset[torch.arange(6)]
    seq, lengths, targets, times = (rows["item_id_list"].clone(), rows["item_length"].clone(), rows["item_id"],
                                    rows["timestamp"])
    extended = with_latest_behaviour(rows, config)
    for r in range(6):
        new_length = int(extended["item_length"][r])
        assert new_length == min(int(lengths[r]) + 1, seq.shape[1])  # the lists' width: DSIN's K x T
        assert extended["item_id_list"][r, new_length - 1] == targets[r]
        assert extended["timestamp_list"][r, new_length - 1] == times[r]
        kept = seq[r, :lengths[r]].tolist()[-(new_length - 1):] if new_length > 1 else []
        assert extended["item_id_list"][r, :new_length - 1].tolist() == kept


def test_command_line_prints_or_writes_csv_and_names_an_unknown_user(trained, tmp_path, capsys):
    assert recommend_module.main([trained["DIN"], "--users", "3", "--topk", "4"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("3: ") and len(line.split()) == 5
    output = tmp_path / "recs.csv"
    assert recommend_module.main([trained["DIN"], "--all-users", "--topk", "3", "--output", str(output)]) == 0
    rows = list(csv.DictReader(output.open()))
    assert len(rows) == 24 * 3 and {row["rank"] for row in rows} == {"1", "2", "3"}
    assert recommend_module.main([trained["DIN"], "--users", "nobody"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "user 'nobody' is not in the dataset" in err


def test_a_given_history_scores_as_the_test_row_does_and_new_users_need_only_that(trained, capsys):
    loaded = load_data_and_model(trained["DIN"])
    config, _, dataset, _, _, test_data = loaded
    test_split = test_data._dataset
    rows = test_split[torch.arange(len(test_split))]
    users = ["4", "9"]
    histories = {}
    for user in users:
        row = (rows["user_id"] == dataset.token2id("user_id", user)).nonzero()[-1, 0]
        length = int(rows["item_length"][row])
        histories[user] = list(dataset.id2token("item_id", rows["item_id_list"][row, :length].numpy()))
    from_log = recommend(loaded, users, topk=7, exclude_seen=False, history="test")
    given = recommend(loaded, users, topk=7, exclude_seen=False, histories=histories)
    for (user, items, scores), (user_given, items_given, scores_given) in zip(from_log, given):
        assert user == user_given and items == items_given
        torch.testing.assert_close(torch.tensor(scores_given), torch.tensor(scores), rtol=1e-5, atol=1e-6)
    # a user the dataset does not hold: its history (new items dropped), its history's items left out
    history = histories["4"] + ["never-seen"]
    ((user, items, scores),) = recommend(loaded, ["newcomer"], topk=10, histories={"newcomer": history})
    assert user == "newcomer" and len(items) == 10 and not set(items) & set(history)
    assert scores == sorted(scores, reverse=True)
    assert recommend_module.main([trained["DIN"], "--users", "newcomer", "--history-items", *history[:3],
                                  "--topk", "3"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("newcomer: ") and len(line.split()) == 4
    with pytest.raises(SystemExit):
        recommend_module.main([trained["DIN"], "--users", "1", "2", "--history-items", "5"])
    assert "exactly one --users token" in capsys.readouterr().err
