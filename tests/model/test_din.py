from collections import Counter

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


def reference_minibatch_l2(embedding, used_ids, training_ids):
    r"""\sum_j ||w_j||^2 / n_j over the embedding rows j (every token field's) that the ids a batch
    uses bring, each once; n_j counts the rows' tokens over every id occurrence of the training data."""
    penalty = 0.0
    for field in embedding.token_fields + embedding.token_seq_fields:
        column = embedding.column(field)
        def tokens(row):
            values = column[row].reshape(-1).tolist()
            return [t for t in values if t != 0] if field in embedding.token_seq_fields else values
        occurrences = Counter(t for row in training_ids for t in tokens(row))
        used = {t for row in set(used_ids) for t in tokens(row)}
        weight = embedding.embeddings[field].weight
        penalty = penalty + sum(weight[t].pow(2).sum() / occurrences[t] for t in used)
    return penalty


def test_mini_batch_l2_penalises_only_the_ids_the_batch_uses(din_setup):
    model, train_data, batch = din_setup(mini_batch_l2=0.05)
    model.eval()  # same statistics for both losses
    seq, lengths = batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
    assert (lengths < seq.shape[1]).any(), "the batch should contain padded histories"
    # ids at padded positions (not zero here) are no behaviours: they must not be penalised
    padded = torch.arange(seq.shape[1]) >= lengths.unsqueeze(-1)
    batch[model.ITEM_SEQ] = torch.where(padded, torch.randint_like(seq, 1, model.n_items), seq)
    with_penalty = model.calculate_loss(batch)
    model.mini_batch_l2 = 0.0
    without = model.calculate_loss(batch)

    rows = train_data._dataset[torch.arange(len(train_data._dataset))]
    def real_items(rows):
        return [i for r in range(len(rows)) for i in rows[model.ITEM_SEQ][r, :int(rows[model.ITEM_SEQ_LEN][r])].tolist()
                ] + rows[model.ITEM_ID].tolist()
    penalty = (reference_minibatch_l2(model.item_embedding, real_items(batch), real_items(rows))
               + reference_minibatch_l2(model.user_embedding, batch[model.USER_ID].tolist(),
                                        rows[model.USER_ID].tolist()))
    torch.testing.assert_close(with_penalty - without, 0.05 / 2 * penalty, rtol=1e-5, atol=1e-7)


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
