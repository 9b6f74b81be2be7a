import pytest
import torch

from tests.conftest import assert_every_parameter_gets_a_gradient, assert_full_sort_matches_predict


@pytest.fixture
def din_setup(tiny_model):
    return lambda **overrides: tiny_model("DIN", **overrides)


def test_shapes_and_probabilities(din_setup):
    model, _, batch = din_setup()
    model.eval()
    logits = model(batch)
    assert logits.shape == (len(batch),)
    probabilities = model.predict(batch)
    assert torch.all((probabilities > 0) & (probabilities < 1))
    assert model.calculate_loss(batch).dim() == 0


def test_behaviour_embedding_is_item_id_and_side_features(din_setup):
    model, _, _ = din_setup()
    assert model.item_embedding.fields == ["item_id", "year", "genre", "price"]
    assert model.user_embedding.fields == ["age", "gender"]
    assert model.item_embedding.output_size == 4 * 18


@pytest.mark.parametrize("softmax", [False, True])
def test_padded_positions_change_nothing(din_setup, softmax):
    model, _, batch = din_setup(attention_softmax=softmax)
    model.eval()
    before = model.predict(batch)
    seq, lengths = batch[model.ITEM_SEQ].clone(), batch[model.ITEM_SEQ_LEN]
    assert (lengths < seq.shape[1]).any(), "the batch should contain padded histories"
    padded = torch.arange(seq.shape[1]) >= lengths.unsqueeze(-1)
    batch[model.ITEM_SEQ] = torch.where(padded, torch.randint_like(seq, 1, model.n_items), seq)
    torch.testing.assert_close(model.predict(batch), before)
    # and in training mode (batch statistics) as well
    model.train()
    batch[model.ITEM_SEQ] = seq
    loss = model.calculate_loss(batch)
    batch[model.ITEM_SEQ] = torch.where(padded, torch.randint_like(seq, 1, model.n_items), seq)
    torch.testing.assert_close(model.calculate_loss(batch), loss)


def test_attention_weights_are_not_normalised_by_default(din_setup):
    model, _, batch = din_setup()
    assert model.attention_softmax is False
    model, _, batch = din_setup(attention_softmax=True)
    assert model.attention_softmax is True


def test_full_sort_predict_equals_predict_item_by_item(din_setup):
    model, _, batch = din_setup(full_sort_chunk_elements=5000)  # forces several chunks
    assert_full_sort_matches_predict(model, batch[:5])


def test_gradients_reach_every_parameter(din_setup):
    model, _, batch = din_setup(mini_batch_l2=0.01)
    assert_every_parameter_gets_a_gradient(model, batch)


def test_mini_batch_l2_adds_the_penalty_of_the_rows_in_the_batch(din_setup):
    model, _, batch = din_setup(mini_batch_l2=0.5)
    model.eval()  # same statistics for both losses
    with_penalty = model.calculate_loss(batch)
    items = torch.cat([batch[model.ITEM_SEQ].flatten(), batch[model.ITEM_ID]])
    penalty = model.item_embedding.minibatch_l2(items) + model.user_embedding.minibatch_l2(batch[model.USER_ID])
    model.mini_batch_l2 = 0.0
    torch.testing.assert_close(with_penalty, model.calculate_loss(batch) + 0.25 * penalty)


def test_occurrence_counts_cover_histories_and_targets(din_setup):
    model, _, _ = din_setup(mini_batch_l2=0.01)
    occurrences = model.item_embedding.occurrences_item_id
    assert occurrences[0] == 1  # padding id: clamped, never divides by zero
    assert occurrences[1:].sum() > 0


@pytest.mark.parametrize("softmax", [False, True])
def test_packed_batch_matches_a_row_by_row_reference(din_setup, softmax):
    model, _, batch = din_setup(attention_softmax=softmax)
    model.eval()
    logits = []
    with torch.no_grad():
        for r in range(len(batch)):
            history = model.item_embedding(batch[model.ITEM_SEQ][r, :int(batch[model.ITEM_SEQ_LEN][r])])  # [T, D]
            target = model.item_embedding(batch[model.ITEM_ID][r])                                     # [D]
            weights = model.attention(target, history)                                                # [T]
            weights = torch.softmax(weights, -1) if softmax else weights
            features = torch.cat([model.user_embedding(batch[model.USER_ID][r]), weights @ history, target])
            logits.append(model.prediction(model.mlp(features.unsqueeze(0))).squeeze())
        torch.testing.assert_close(model(batch), torch.stack(logits), rtol=1e-5, atol=1e-5)


def test_longer_padding_changes_nothing(din_setup):
    model, _, batch = din_setup()
    model.eval()
    before = model.predict(batch)
    batch[model.ITEM_SEQ] = torch.cat([batch[model.ITEM_SEQ], torch.zeros(len(batch), 24, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model.predict(batch), before)
