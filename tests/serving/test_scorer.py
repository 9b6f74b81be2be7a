"""The scorer of raw requests: equal to predict for known tokens, unknown tokens handled as
documented (each against a slow reference built from predict), inputs checked field by field."""
import copy
import pathlib
import subprocess
import sys

import pytest
import torch

from recbole_dien.model.layers import FeatureEmbedding
from recbole_dien.serving import Request, Scorer, ScoringError, export


def eager_scorer(model, dataset, unknown_vector="auto"):
    """A scorer running the serving module itself (the exported programs equal it: test_export.py)."""
    module = export.ServingModule(model, dataset, unknown_vector)
    return Scorer.from_program(module, export.serving_metadata(module, dataset, "eager"))


def tokens(dataset, field, ids):
    return [str(token) for token in dataset.id2token(field, ids.numpy())]


def requests_of(model, dataset, rows, candidates=None):
    """One raw request per batch row: the row's user, history (with times) and candidates."""
    requests = []
    for r in range(len(rows)):
        length = int(rows[model.ITEM_SEQ_LEN][r])
        history = tokens(dataset, dataset.iid_field, rows[model.ITEM_SEQ][r, :length])
        times = rows[model.TIME_SEQ][r, :length].tolist() if hasattr(model, "TIME_SEQ") else None
        wanted = rows[model.ITEM_ID][r:r + 1] if candidates is None else candidates[r]
        requests.append(Request(user=tokens(dataset, dataset.uid_field, rows[model.USER_ID][r:r + 1])[0],
                                history=history, times=times, candidates=tokens(dataset, dataset.iid_field, wanted)))
    return requests


@pytest.mark.parametrize("model_name", ["DIN", "DIEN", "DSIN"])
def test_raw_requests_of_known_tokens_equal_predict(tiny_model, model_name):
    model, train_data, batch = tiny_model(model_name)
    model.eval()
    dataset, rows = train_data._dataset, batch[:12]
    scores = eager_scorer(model, dataset).score(requests_of(model, dataset, rows))
    torch.testing.assert_close(scores.probabilities[:, 0], model.predict(rows), rtol=1e-5, atol=1e-5)
    assert scores.dropped_history == [0] * 12 and scores.unknown_user == [False] * 12
    assert scores.unknown_candidates == [0] * 12
    assert scores.probabilities.grad_fn is None and not scores.probabilities.requires_grad


def test_requests_may_have_different_candidate_counts(tiny_model):
    model, train_data, batch = tiny_model("DIN")
    model.eval()
    dataset, rows = train_data._dataset, batch[:2]
    scorer = eager_scorer(model, dataset)
    requests = requests_of(model, dataset, rows, [torch.tensor([3, 4, 5]), torch.tensor([6])])
    scores = scorer.score(requests)
    assert scores.probabilities.shape == (2, 3) and scores.probabilities[1, 1:].isnan().all()
    alone = scorer.score(requests[1]).probabilities
    torch.testing.assert_close(scores.probabilities[1, :1], alone[0])


def test_unknown_history_items_are_dropped_and_counted(tiny_model):
    model, train_data, batch = tiny_model("DSIN")
    model.eval()
    dataset, rows = train_data._dataset, batch[:4]
    scorer = eager_scorer(model, dataset)
    requests = requests_of(model, dataset, rows)
    expected = scorer.score(requests).probabilities
    for request in requests:  # a new item between every two behaviours, at the time of the later one
        request.history = [item for known in request.history for item in ("never-seen", known)]
        request.times = [t for time in request.times for t in (time, time)]
    scores = scorer.score(requests)
    torch.testing.assert_close(scores.probabilities, expected)
    assert scores.dropped_history == [int(n) for n in rows[model.ITEM_SEQ_LEN]]


@pytest.mark.parametrize("unknown_vector", ["mean", "learned"])
def test_an_unknown_candidate_scores_from_its_side_features_with_the_unknown_id_vector(tiny_model, unknown_vector):
    model, train_data, batch = tiny_model("DIN", unknown_id_dropout=0.2)
    model.eval()
    dataset, rows = train_data._dataset, batch[:6]
    item = 17
    table = dataset.get_item_feature()
    features = {"year": tokens(dataset, "year", table["year"][item:item + 1])[0],
                "genre": [t for t in tokens(dataset, "genre", table["genre"][item]) if t != "[PAD]"],
                "price": float(table["price"][item])}
    requests = requests_of(model, dataset, rows, [torch.tensor([item])] * 6)
    for request in requests:
        request.candidates, request.item_features = ["brand-new"], {"brand-new": features}
    scores = eager_scorer(model, dataset, unknown_vector).score(requests)
    assert scores.unknown_candidates == [1] * 6
    # reference: predict with item 17's id embedding replaced by the unknown-id vector
    reference = copy.deepcopy(model)
    weight = reference.item_embedding.embeddings["item_id"].weight
    with torch.no_grad():
        weight[item] = weight[FeatureEmbedding.UNKNOWN_ID] if unknown_vector == "learned" else weight[1:].mean(0)
    rows[model.ITEM_ID] = torch.full((6,), item)
    torch.testing.assert_close(scores.probabilities[:, 0], reference.predict(rows), rtol=1e-5, atol=1e-5)


def test_an_unknown_user_scores_from_the_history_with_the_average_profile(tiny_model):
    model, train_data, batch = tiny_model("DIEN")
    model.eval()
    dataset, rows = train_data._dataset, batch[:5]
    scorer = eager_scorer(model, dataset)
    requests = requests_of(model, dataset, rows)
    known = scorer.score(requests).probabilities
    # the user's own side features given for an unknown user: the same scores
    users = dataset.get_user_feature()
    for request, user in zip(requests, rows[model.USER_ID]):
        request.user_features = {f: tokens(dataset, f, users[f][user:user + 1])[0] for f in ("age", "gender")}
        request.user = f"new-{request.user}"
    with_features = scorer.score(requests)
    torch.testing.assert_close(with_features.probabilities, known)
    assert with_features.unknown_user == [True] * 5
    # none given: each profile field is its mean embedding over the dataset's users
    for request in requests:
        request.user_features = None
    reference = copy.deepcopy(model)
    with torch.no_grad():
        for field in ("age", "gender"):
            weight = reference.user_embedding.embeddings[field].weight
            weight[users[field][rows[model.USER_ID]]] = weight[users[field][1:]].mean(0)
    torch.testing.assert_close(scorer.score(requests).probabilities[:, 0], reference.predict(rows),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model_name", ["DIN", "DIEN", "DSIN"])
def test_a_batch_split_into_calls_of_pairs_per_call_scores_as_one_call(tiny_model, model_name):
    model, train_data, batch = tiny_model(model_name)
    model.eval()
    dataset, rows = train_data._dataset, batch[:7]
    candidates = [torch.tensor([3, 4, 5])] * 7
    requests = requests_of(model, dataset, rows, candidates)
    requests[2].user = "new-user"                                     # the default profile, in the second call
    requests[5].candidates = ["brand-new", *requests[5].candidates[1:]]  # an unknown item, in the third call
    module = export.ServingModule(model, dataset)
    metadata = export.serving_metadata(module, dataset, "eager")
    calls = []

    def program(*inputs):
        calls.append(len(inputs[1]))                                  # lengths: one per user of the call
        return module(*inputs)

    whole = Scorer.from_program(module, metadata).score(requests).probabilities
    split = Scorer.from_program(program, metadata, pairs_per_call=7).score(requests)   # 7 // 3 = 2 users a call
    assert calls == [2, 2, 2, 1]
    torch.testing.assert_close(split.probabilities, whole)
    assert split.unknown_user[2] and split.unknown_candidates[5] == 1
    Scorer.from_program(program, metadata, pairs_per_call=1).score(requests)          # fewer than C: a user a call
    assert calls[4:] == [1] * 7


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "100"])
def test_pairs_per_call_must_be_a_positive_whole_number(tiny_model, value):
    model, train_data, _ = tiny_model("DIN")
    module = export.ServingModule(model, train_data._dataset)
    with pytest.raises(ScoringError, match=r"^pairs_per_call: .*positive whole number"):
        Scorer.from_program(module, export.serving_metadata(module, train_data._dataset, "eager"), pairs_per_call=value)


def test_unknown_id_dropout_trains_row_zero_as_the_id_of_unseen_items(tiny_model):
    model, train_data, _ = tiny_model("DIN", unknown_id_dropout=0.5)
    embedding = model.item_embedding
    assert embedding.unknown_id_dropout == 0.5
    ids = torch.arange(1, 60)
    embedding.eval()
    plain = embedding.embed_rows(ids)
    embedding.train()
    torch.manual_seed(0)
    trained = embedding.embed_rows(ids)
    id_part, side_part = slice(0, embedding.embedding_size), slice(embedding.embedding_size, None)
    replaced = ~torch.isclose(trained[:, id_part], plain[:, id_part]).all(1)
    assert 15 < int(replaced.sum()) < 45                                       # about half of 59
    unknown = embedding.embeddings["item_id"].weight[FeatureEmbedding.UNKNOWN_ID]
    torch.testing.assert_close(trained[replaced, id_part], unknown.expand(int(replaced.sum()), -1))
    torch.testing.assert_close(trained[:, side_part], plain[:, side_part])
    with pytest.raises(ValueError, match="unknown_id_dropout must be >= 0 and < 1"):
        FeatureEmbedding(train_data._dataset, "item", 4, unknown_id_dropout=1.0)


def test_the_learned_vector_needs_a_model_trained_with_it(tiny_model):
    model, train_data, _ = tiny_model("DIN")
    with pytest.raises(export.RecBoleDienError, match="needs a model trained with unknown_id_dropout > 0"):
        export.ServingModule(model, train_data._dataset, "learned")


@pytest.fixture
def dsin_scorer(tiny_model):
    model, train_data, batch = tiny_model("DSIN")
    model.eval()
    return eager_scorer(model, train_data._dataset), model, batch[:3]


def ids_of(model, rows):
    return {"users": rows[model.USER_ID], "item_seq": rows[model.ITEM_SEQ], "lengths": rows[model.ITEM_SEQ_LEN],
            "time_seq": rows[model.TIME_SEQ], "candidates": rows[model.ITEM_ID].unsqueeze(1)}


# {L}: the history width; the tiny dataset has items 1..60 and users 1..24
@pytest.mark.parametrize("change,message", [
    (lambda x: x.update(lengths=x["lengths"] + 60), r"^lengths: \d+ is outside 0\.\.{L} \(each history's real"),
    (lambda x: x.update(lengths=-x["lengths"]), r"^lengths: -\d+ is outside 0\.\.{L}"),
    (lambda x: x.update(candidates=x["candidates"] + 1000), r"^candidates: \d+ is outside 1\.\.60 \(the export's item"),
    (lambda x: x.update(candidates=x["candidates"] * 0), r"^candidates: 0 is outside 1\.\.60"),
    (lambda x: x.update(users=x["users"] + 99), r"^users: \d+ is outside 0\.\.24"),
    (lambda x: x["item_seq"].__setitem__((0, 0), 61), r"^item_seq: 61 is outside 1\.\.60 \(the export's item ids within"),
    (lambda x: x.update(lengths=x["lengths"][:2]), r"^lengths: 2 rows, but item_seq has 3"),
    (lambda x: x.update(candidates=x["candidates"].flatten()), r"^candidates: 1-D tensor of shape \(3,\), must be 2-D"),
    (lambda x: x.update(time_seq=x["time_seq"][:, :7]), r"^time_seq: shape \(3, 7\), must be item_seq's \(3, {L}\)"),
    (lambda x: x.update(item_seq=x["item_seq"].float()), r"^item_seq: dtype torch.float32, must be an integer"),
    (lambda x: x.update(item_seq=torch.ones(3, 99, dtype=torch.long)), r"^item_seq: 99 positions, more than"),
    (lambda x: x["time_seq"].__setitem__((0, 0), float("nan")), r"^time_seq: must be finite"),
    (lambda x: x["time_seq"].__setitem__((0, 1), -1.0), r"^time_seq: must not decrease"),
    (lambda x: x.update(time_seq=None), r"^time_seq: DSIN cuts sessions by time"),
])
def test_bad_internal_ids_are_one_line_naming_the_field(dsin_scorer, change, message):
    scorer, model, rows = dsin_scorer
    inputs = {key: value.clone() for key, value in ids_of(model, rows).items()}
    assert scorer.score_ids(**inputs).shape == (3, 1)
    assert (inputs["lengths"] >= 2).all()  # the changes above need two real behaviours per row
    change(inputs)
    with pytest.raises(ScoringError, match=message.replace("{L}", str(scorer.history_length))):
        scorer.score_ids(**inputs)


@pytest.mark.parametrize("change,message", [
    (lambda r: setattr(r, "times", r.times[:-1]), r"^request 0: times has 3 values for 4 history items"),
    (lambda r: setattr(r, "times", None), r"^request 0: times: DSIN cuts sessions by time"),
    (lambda r: setattr(r, "times", list(reversed(r.times))), r"^request 0: times must not decrease"),
    (lambda r: setattr(r, "candidates", []), r"^request 0: candidates is empty"),
    (lambda r: setattr(r, "candidates", "12"), r"^request 0: candidates: a list of tokens, not str"),
    (lambda r: setattr(r, "item_features", {"x": {"colour": "red"}}) or setattr(r, "candidates", ["x"]),
     r"^request 0: item_features\['x'\]: no side feature 'colour' in the export \(fields: year, genre, price\)"),
    (lambda r: setattr(r, "item_features", {"x": {"price": "cheap"}}) or setattr(r, "candidates", ["x"]),
     r"^request 0: item_features\['x'\]: price is a float field, not 'cheap'"),
    (lambda r: setattr(r, "user", None) or setattr(r, "user_features", {"height": 3}),
     r"^request 0: user_features: no side feature 'height' in the export \(fields: age, gender\)"),
])
def test_bad_raw_requests_are_one_line_naming_the_field(dsin_scorer, change, message):
    scorer, _, _ = dsin_scorer
    request = Request(user="1", history=["1", "2", "3", "4"], times=[1.0, 2.0, 3.0, 4.0], candidates=["5"])
    assert scorer.score(request).probabilities.shape == (1, 1)
    change(request)
    with pytest.raises(ScoringError, match=message):
        scorer.score(request)


def test_no_request_is_one_line(dsin_scorer):
    with pytest.raises(ScoringError, match="^requests: give at least one request"):
        dsin_scorer[0].score([])


def test_the_scorer_file_needs_torch_only(tiny_model, tmp_path):
    """scorer.py loaded on its own, with RecBole and recbole_dien unimportable, scores an exported
    program as the package does."""
    model, train_data, batch = tiny_model("DIN")
    model.eval()
    dataset = train_data._dataset
    module = export.ServingModule(model, dataset)
    torch.export.save(export.export_program(module), tmp_path / "din.pt2")
    export.write_metadata(export.serving_metadata(module, dataset, "torch"), tmp_path / "din.pt2")
    request = requests_of(model, dataset, batch[:1])[0]
    request.history = request.history + ["never-seen"]
    request.candidates = request.candidates + ["new-item"]
    request.item_features = {"new-item": {"genre": "Drama Comedy", "year": "1994"}}
    expected = Scorer(str(tmp_path / "din.pt2")).score(request)
    scorer_file = pathlib.Path(export.__file__).with_name("scorer.py")
    script = (
        "import importlib.util, sys\n"
        "for blocked in ('recbole', 'recbole_dien'):\n"
        "    sys.modules[blocked] = None  # importing either now fails\n"
        f"spec = importlib.util.spec_from_file_location('scorer', {str(scorer_file)!r})\n"
        "scorer = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(scorer)\n"
        f"request = scorer.Request(user={request.user!r}, history={request.history!r}, "
        f"candidates={request.candidates!r}, item_features={request.item_features!r})\n"
        f"scores = scorer.Scorer({str(tmp_path / 'din.pt2')!r}).score(request)\n"
        "print(scores.probabilities.tolist(), scores.dropped_history, scores.unknown_candidates)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"{expected.probabilities.tolist()} [1] [1]"
