import pytest
import torch

from recbole_dien.data.negatives import sample_negative_sequences
from recbole_dien.model.layers import InterestEvolution
from tests.conftest import assert_every_parameter_gets_a_gradient, assert_full_sort_matches_predict


# --- interest evolving layer vs a slow, obviously correct reference ------------------------------

def reference_evolution(layer, inputs, attention, lengths):
    """The paper's equations one sequence and one step at a time, with named weight blocks."""
    H = layer.hidden_size
    W_r, W_z, W_n = layer.gru.weight_ih_l0.split(H)
    U_r, U_z, U_n = layer.gru.weight_hh_l0.split(H)
    bi_r, bi_z, bi_n = layer.gru.bias_ih_l0.split(H)
    bh_r, bh_z, bh_n = layer.gru.bias_hh_l0.split(H)
    outputs = []
    for b in range(inputs.shape[0]):
        h = torch.zeros(H, dtype=inputs.dtype)
        states = []
        for t in range(int(lengths[b])):
            a = attention[b, t]
            i = inputs[b, t] * a if layer.gru_type == "AIGRU" else inputs[b, t]
            r = torch.sigmoid(W_r @ i + bi_r + U_r @ h + bh_r)
            u = 1 - torch.sigmoid(W_z @ i + bi_z + U_z @ h + bh_z)   # update gate of the paper
            h_tilde = torch.tanh(W_n @ i + bi_n + r * (U_n @ h + bh_n))
            if layer.gru_type in ("GRU", "AIGRU"):
                h = (1 - u) * h + u * h_tilde
            elif layer.gru_type == "AGRU":
                h = (1 - a) * h + a * h_tilde
            elif layer.augru_variant == "paper":
                u_att = a * u
                h = (1 - u_att) * h + u_att * h_tilde
            else:  # authors' code: keep gate (1 - u) scaled by (1 - a)
                keep = (1 - a) * (1 - u)
                h = keep * h + (1 - keep) * h_tilde
            states.append(h)
        if layer.gru_type == "GRU":
            outputs.append(sum((attention[b, t] * s for t, s in enumerate(states)), torch.zeros(H, dtype=inputs.dtype)))
        else:
            outputs.append(states[-1] if states else torch.zeros(H, dtype=inputs.dtype))
    return torch.stack(outputs)


CASES = [("GRU", "paper"), ("AIGRU", "paper"), ("AGRU", "paper"), ("AUGRU", "paper"), ("AUGRU", "authors")]


@pytest.mark.parametrize("lengths", [[6, 2, 4], [1, 12, 0, 3, 12, 2]], ids=["full", "padding-heavy"])
@pytest.mark.parametrize("gru_type,variant", CASES)
def test_evolution_matches_reference_forward_and_backward(gru_type, variant, lengths, seeded):
    layer = InterestEvolution(5, 4, gru_type, variant).double()
    lengths = torch.tensor(lengths)
    inputs = torch.randn(len(lengths), int(lengths.max()), 5, dtype=torch.double, requires_grad=True)
    mask = torch.arange(inputs.shape[1]) < lengths.unsqueeze(-1)
    attention = (torch.rand(*mask.shape, dtype=torch.double) * mask).requires_grad_()

    fast = layer(inputs, attention, lengths)
    fast_grads = torch.autograd.grad(fast.pow(2).sum(), [inputs, attention, *layer.parameters()])
    slow = reference_evolution(layer, inputs, attention, lengths)
    slow_grads = torch.autograd.grad(slow.pow(2).sum(), [inputs, attention, *layer.parameters()])

    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-12)
    for got, want in zip(fast_grads, slow_grads):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("gru_type,variant", [case for case in CASES if case[0] in ("AGRU", "AUGRU")])
def test_dense_evolution_of_several_candidates_matches_reference(gru_type, variant, seeded):
    """evolve_dense (every step of padded rows, fixed shapes: serving programs) against the
    reference, each candidate's attention on its own; rows of length 0 and shorter than L."""
    layer = InterestEvolution(5, 4, gru_type, variant).double()
    lengths = torch.tensor([1, 7, 0, 3, 7])
    inputs = torch.randn(len(lengths), 7, 5, dtype=torch.double)
    mask = torch.arange(7) < lengths.unsqueeze(-1)
    attention = torch.rand(len(lengths), 3, 7, dtype=torch.double) * mask.unsqueeze(1)   # [B, C, L]
    dense = layer.evolve_dense(layer.project_inputs(inputs), attention, lengths)           # [B, C, H]
    assert dense.shape == (5, 3, 4)
    for candidate in range(3):
        torch.testing.assert_close(dense[:, candidate], reference_evolution(layer, inputs, attention[:, candidate], lengths),
                                   rtol=1e-10, atol=1e-12)


def test_augru_with_zero_attention_keeps_the_initial_state(seeded):
    layer = InterestEvolution(5, 4, "AUGRU")
    out = layer(torch.randn(3, 6, 5), torch.zeros(3, 6), torch.tensor([6, 3, 1]))
    assert torch.equal(out, torch.zeros(3, 4))


def test_authors_augru_with_zero_attention_is_a_plain_gru(seeded):
    layer = InterestEvolution(5, 4, "AUGRU", "authors")
    inputs = torch.randn(3, 6, 5)
    _, final = layer.gru(inputs)
    torch.testing.assert_close(layer(inputs, torch.zeros(3, 6), torch.full((3,), 6)), final[0])


def test_unknown_gru_type_is_rejected():
    with pytest.raises(ValueError, match="gru_type must be one of"):
        InterestEvolution(4, 4, "LSTM")


# --- negative behaviour sequences --------------------------------------------------------------

def test_negatives_avoid_the_positive_and_the_visible_history(seeded):
    item_seq = torch.randint(1, 8, (500, 6))
    lengths = torch.randint(1, 7, (500,))
    item_seq = item_seq * (torch.arange(6) < lengths.unsqueeze(-1))
    negatives = sample_negative_sequences(item_seq, lengths, n_items=12, exclude="history")
    real = torch.arange(6) < lengths.unsqueeze(-1)
    assert torch.all((negatives > 0) == real)
    for r in range(500):
        for k in range(int(lengths[r])):
            assert negatives[r, k] not in item_seq[r, :k + 1].tolist()


def test_positive_only_exclusion_may_reuse_history_items(seeded):
    item_seq = torch.tensor([[1, 2, 3, 4, 5, 6]] * 400)
    lengths = torch.full((400,), 6)
    negatives = sample_negative_sequences(item_seq, lengths, n_items=8, exclude="positive")
    assert torch.all(negatives != item_seq)
    assert (negatives[:, 5:] < 6).any()  # earlier history items are allowed under 'positive'


@pytest.fixture
def dien_setup(tiny_model):
    return lambda **overrides: tiny_model("DIEN", **overrides)


def test_dataset_negatives_are_aligned_and_never_the_positive(dien_setup):
    model, train_data, _ = dien_setup()
    dataset = train_data._dataset
    rows = dataset[torch.arange(len(dataset))]
    item_seq, negatives = rows[model.ITEM_SEQ], rows[model.NEG_ITEM_SEQ]
    real = torch.arange(item_seq.shape[1]) < rows[model.ITEM_SEQ_LEN].unsqueeze(-1)
    assert torch.all((negatives > 0) == real)
    assert not torch.any((negatives == item_seq) & real)
    for r in range(len(rows)):
        for k in range(int(rows[model.ITEM_SEQ_LEN][r])):
            assert negatives[r, k] not in item_seq[r, :k + 1].tolist()


def test_resampling_draws_new_negatives_each_load(dien_setup):
    model, train_data, _ = dien_setup(neg_resample_each_epoch=True)
    dataset = train_data._dataset
    first, second = dataset[torch.arange(40)], dataset[torch.arange(40)]
    assert not torch.equal(first[model.NEG_ITEM_SEQ], second[model.NEG_ITEM_SEQ])
    assert torch.equal(first[model.ITEM_SEQ], second[model.ITEM_SEQ])


# --- the model ------------------------------------------------------------------------------

def test_shapes_and_probabilities(dien_setup):
    model, _, batch = dien_setup()
    model.eval()
    assert model(batch).shape == (len(batch),)
    p = model.predict(batch)
    assert torch.all((p > 0) & (p < 1))


@pytest.mark.parametrize("gru_type", InterestEvolution.GRU_TYPES)
def test_padding_changes_neither_scores_nor_auxiliary_loss(dien_setup, gru_type):
    model, _, batch = dien_setup(gru_type=gru_type)
    model.eval()
    seq, neg = batch[model.ITEM_SEQ].clone(), batch[model.NEG_ITEM_SEQ].clone()
    padded = torch.arange(seq.shape[1]) >= batch[model.ITEM_SEQ_LEN].unsqueeze(-1)
    assert padded.any()
    scores, aux = model.predict(batch), model.auxiliary_loss(batch, model.extract_interests(batch))
    batch[model.ITEM_SEQ] = torch.where(padded, torch.randint_like(seq, 1, model.n_items), seq)
    batch[model.NEG_ITEM_SEQ] = torch.where(padded, torch.randint_like(neg, 1, model.n_items), neg)
    torch.testing.assert_close(model.predict(batch), scores)
    torch.testing.assert_close(model.auxiliary_loss(batch, model.extract_interests(batch)), aux)


def test_auxiliary_loss_equals_hand_computation(dien_setup):
    model, _, batch = dien_setup()
    model.eval()
    rows = batch[:3]
    aux = model.auxiliary_loss(rows, model.extract_interests(rows))
    terms = []
    for r in range(3):
        length = int(rows[model.ITEM_SEQ_LEN][r])
        history = model.item_embedding(rows[model.ITEM_SEQ][r, :length])
        states, _ = model.interest_extractor(history.unsqueeze(0))
        for t in range(length - 1):
            positive = model.item_embedding(rows[model.ITEM_SEQ][r, t + 1])
            negative = model.item_embedding(rows[model.NEG_ITEM_SEQ][r, t + 1])
            def auxiliary(item):
                return torch.sigmoid(model.auxiliary_net(model.auxiliary_input(torch.cat([states[0, t], item]))[None]))
            p_click, p_neg = auxiliary(positive), auxiliary(negative)
            terms.append(-(torch.log(p_click) + torch.log(1 - p_neg)).squeeze())
    torch.testing.assert_close(aux, torch.stack(terms).mean(), rtol=1e-5, atol=1e-6)


def test_auxiliary_loss_counts_each_history_once(dien_setup):
    model, _, batch = dien_setup()
    model.eval()
    # RecBole's point-wise batch holds every history twice (positive and sampled-negative rows)
    half = len(batch) // 2
    assert torch.equal(batch[model.ITEM_SEQ][:half], batch[model.ITEM_SEQ][half:])
    once = batch[:half]
    torch.testing.assert_close(model.auxiliary_loss(batch, model.extract_interests(batch)),
                               model.auxiliary_loss(once, model.extract_interests(once)))
    assert len(model.extract_interests(batch)["rows"]) == half


@pytest.mark.parametrize("settings", [{}, {"attention_softmax": False, "history_sum_features": True},
                                      {"gru_type": "AGRU"}, {"gru_type": "GRU"}, {"gru_type": "AIGRU"},
                                      {"augru_variant": "authors", "full_sort_chunk_elements": 10 ** 8}])
def test_full_sort_predict_equals_predict_item_by_item(dien_setup, settings):
    model, _, batch = dien_setup(**{"full_sort_chunk_elements": 20000, **settings})
    assert_full_sort_matches_predict(model, batch[:4])
    assert_full_sort_matches_predict(model, batch[::7])  # histories of many lengths, duplicate users


@pytest.mark.parametrize("history_sum_features", [False, True])
def test_gradients_reach_every_parameter(dien_setup, history_sum_features):
    model, _, batch = dien_setup(history_sum_features=history_sum_features, gru_hidden_size=20)
    assert_every_parameter_gets_a_gradient(model, batch)


def test_missing_negative_sequences_are_a_clear_error(dien_setup):
    model, _, batch = dien_setup()
    del batch.interaction[model.NEG_ITEM_SEQ]
    with pytest.raises(KeyError, match="recbole_dien.create_dataset"):
        model.calculate_loss(batch)


def test_auxiliary_loss_is_zero_not_nan_without_any_pair(dien_setup):
    model, _, batch = dien_setup()
    short = batch[batch[model.ITEM_SEQ_LEN] == 1]
    assert len(short) > 0
    loss = model.calculate_loss(short)
    assert torch.isfinite(loss)
    assert model.auxiliary_loss(short, model.extract_interests(short)) == 0


def test_negatives_are_resampled_for_training_only(tiny_pipeline):
    config, train_data, valid_data, test_data = tiny_pipeline("DIEN", neg_resample_each_epoch=True)
    assert train_data._dataset.resample_each_epoch
    assert not valid_data._dataset.resample_each_epoch and not test_data._dataset.resample_each_epoch


def test_unnormalised_attention_is_squashed_before_steering_the_gru(dien_setup):
    model, _, batch = dien_setup(attention_softmax=False)
    model.eval()
    assert torch.all((model.predict(batch) > 0) & (model.predict(batch) < 1))


def reference_scores(model, batch):
    """DIEN's logits one row at a time on its real behaviours only, from the model's own layers
    (dense attention, the step-by-step reference evolution): what the packed batch computes."""
    logits = []
    for r in range(len(batch)):
        length = int(batch[model.ITEM_SEQ_LEN][r])
        history = model.item_embedding(batch[model.ITEM_SEQ][r, :length])               # [T, D]
        states, _ = model.interest_extractor(history.unsqueeze(0))                       # [1, T, H]
        target = model.item_embedding(batch[model.ITEM_ID][r:r + 1])                     # [1, D]
        if model.attention_type == "bilinear":  # eq. 8: h_t W e_a, with W [H, D]
            W = model.attention.weight.weight
            scores = torch.stack([states[0, t] @ W @ target[0] for t in range(length)]).unsqueeze(0)  # [1, T]
        else:
            scores = model.attention(model.query_projection(target), states)             # [1, T]
        attention = torch.softmax(scores, -1) if model.attention_softmax else torch.sigmoid(scores)
        evolved = reference_evolution(model.interest_evolution, states, attention, torch.tensor([length]))
        features = [evolved, target, model.user_embedding(batch[model.USER_ID][r:r + 1])]
        if model.history_sum_features:
            features += [history.sum(0, keepdim=True), target * history.sum(0, keepdim=True)]
        logits.append(model.prediction(model.mlp(torch.cat(features, -1))).squeeze(-1))
    return torch.cat(logits)


@pytest.mark.parametrize("settings", [{}, {"attention_softmax": True, "history_sum_features": True},
                                      {"gru_type": "AGRU"}, {"gru_type": "GRU"}, {"gru_type": "AIGRU"},
                                      {"attention_type": "bilinear", "gru_hidden_size": 20},
                                      {"attention_type": "bilinear", "attention_softmax": False, "gru_type": "AGRU"}])
def test_packed_batch_matches_a_row_by_row_reference(dien_setup, settings):
    model, _, batch = dien_setup(**settings)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(batch), reference_scores(model, batch), rtol=1e-5, atol=1e-5)


def test_longer_padding_changes_nothing(dien_setup):
    model, _, batch = dien_setup()
    model.eval()
    scores, aux = model.predict(batch), model.auxiliary_loss(batch, model.extract_interests(batch))
    for field in (model.ITEM_SEQ, model.NEG_ITEM_SEQ):  # MAX_ITEM_LIST_LENGTH 8 -> 32
        batch[field] = torch.cat([batch[field], torch.zeros(len(batch), 24, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model.predict(batch), scores)
    torch.testing.assert_close(model.auxiliary_loss(batch, model.extract_interests(batch)), aux)


def test_recboles_own_dien_dataset_is_named_in_one_warning(tiny_config_dict, caplog):
    from recbole.config import Config as RecBoleConfig
    from recbole.data import create_dataset, data_preparation

    from recbole_dien import DIEN

    config = RecBoleConfig(model=DIEN, dataset="tiny", config_dict=tiny_config_dict)
    train_data, _, _ = data_preparation(config, create_dataset(config))
    assert type(train_data._dataset).__module__.startswith("recbole.")
    with caplog.at_level("WARNING"):
        DIEN(config, train_data._dataset)
    (warning,) = [r.getMessage() for r in caplog.records if "DIENDataset" in r.getMessage()]
    assert "misaligns" in warning and "recbole_dien.create_dataset" in warning


# --- the paper's bilinear attention (attention_type: bilinear) ---------------------------------

BILINEAR = {"attention_type": "bilinear", "gru_hidden_size": 20}  # W [20, 72]: not square


def test_bilinear_attention_is_the_papers_form_on_the_real_steps(dien_setup):
    model, _, batch = dien_setup(**BILINEAR)
    model.eval()
    assert not any(isinstance(m, torch.nn.Linear) and m is not model.attention.weight
                   for m in model.attention.modules())  # no MLP: only W
    weights = model.attention_weights(batch)["interest states"]                     # [B, L]
    with torch.no_grad():
        for r in range(0, len(batch), 5):
            length = int(batch[model.ITEM_SEQ_LEN][r])
            history = model.item_embedding(batch[model.ITEM_SEQ][r, :length])
            states, _ = model.interest_extractor(history.unsqueeze(0))              # [1, T, H]
            target = model.item_embedding(batch[model.ITEM_ID][r])
            W = model.attention.weight.weight                                       # [H, D]
            expected = torch.softmax(torch.stack([states[0, t] @ W @ target for t in range(length)]), 0)
            torch.testing.assert_close(weights[r, :length], expected, rtol=1e-5, atol=1e-6)
            assert torch.all(weights[r, length:] == 0)


@pytest.mark.parametrize("settings", [BILINEAR, {**BILINEAR, "attention_softmax": False, "gru_type": "AGRU",
                                                 "history_sum_features": True}])
def test_bilinear_attention_in_training_full_sort_and_export(dien_setup, settings):
    from recbole_dien.serving import export

    model, train_data, batch = dien_setup(full_sort_chunk_elements=20000, **settings)
    assert_every_parameter_gets_a_gradient(model, batch)
    assert torch.isfinite(model.calculate_loss(batch))
    assert_full_sort_matches_predict(model, batch[::7])
    model.eval()
    scorer = export.exported_scorer(model, train_data._dataset)  # the torch.export program, on internal ids
    rows = batch[:29]
    candidates = torch.randint(1, model.n_items, (len(rows), 4))
    scores = scorer.score_ids(rows[model.USER_ID], rows[model.ITEM_SEQ], rows[model.ITEM_SEQ_LEN], None, candidates)
    for column in range(4):
        rows[model.ITEM_ID] = candidates[:, column]
        torch.testing.assert_close(scores[:, column], model.predict(rows), rtol=1e-5, atol=1e-5)


def test_attention_type_is_validated(dien_setup):
    from recbole_dien.utils.errors import ConfigError

    with pytest.raises(ConfigError, match=r"attention_type='dot'.*one of mlp, bilinear.*props/DIEN.yaml"):
        dien_setup(attention_type="dot")
