import pytest
import torch
import torch.nn as nn

from recbole_dien.model.layers import MLP, ActivationUnit, Dice, FeatureEmbedding, masked_softmax, sequence_mask


def reference_activation_unit(unit, query, keys):
    """The activation unit written out: one Linear on the concatenation [q, k, q-k, q*k]."""
    query = query.unsqueeze(-2).expand_as(keys)
    features = torch.cat([query, keys, query - keys, query * keys], dim=-1)
    hidden = unit.input_activation(unit.input_layer(features))
    for layer in unit.hidden.layers:
        hidden = layer(hidden)
    return unit.output_layer(hidden).squeeze(-1)


def test_activation_unit_equals_concatenation_reference(seeded):
    unit = ActivationUnit(6, (8, 4), activation="sigmoid").double()
    query, keys = torch.randn(3, 6, dtype=torch.double), torch.randn(3, 5, 6, dtype=torch.double)
    torch.testing.assert_close(unit(query, keys), reference_activation_unit(unit, query, keys))


def test_activation_unit_broadcasts_candidates_against_histories(seeded):
    unit = ActivationUnit(6, (8, 4)).double()
    candidates, histories = torch.randn(4, 6, dtype=torch.double), torch.randn(3, 5, 6, dtype=torch.double)
    scores = unit(candidates.unsqueeze(0), histories.unsqueeze(1))                # [3, 4, 5]
    assert scores.shape == (3, 4, 5)
    for b in range(3):
        for n in range(4):
            torch.testing.assert_close(scores[b, n], unit(candidates[n], histories[b]))


@pytest.mark.parametrize("activation", ["sigmoid", "dice"])
def test_scoring_in_key_blocks_equals_scoring_every_key_at_once(activation, seeded):
    unit = ActivationUnit(6, (8, 4), activation=activation).double().eval()
    candidates, histories = torch.randn(3, 4, 6, dtype=torch.double), torch.randn(3, 5, 6, dtype=torch.double)
    by_key = unit.score_key_blocks(candidates, histories, block=2)                  # [3, 4, 5]: blocks 2, 2, 1
    torch.testing.assert_close(by_key, unit(candidates, histories.unsqueeze(1)), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(by_key[1, 2], reference_activation_unit(unit, candidates[1, 2], histories[1]))


def test_dice_uses_batch_statistics_in_training_and_running_ones_in_eval(seeded):
    dice = Dice(3)
    dice.alpha.data = torch.tensor([0.1, 0.2, 0.3])
    x = torch.randn(64, 3) * 2 + 1
    p = torch.sigmoid((x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-8))
    torch.testing.assert_close(dice(x), p * x + (1 - p) * dice.alpha * x)
    dice.eval()
    mean, var = dice.norm.running_mean, dice.norm.running_var
    p = torch.sigmoid((x - mean) / torch.sqrt(var + 1e-8))
    torch.testing.assert_close(dice(x), p * x + (1 - p) * dice.alpha * x)
    # in eval a row's output does not depend on the other rows
    torch.testing.assert_close(dice(x[:1]), dice(x)[:1])


def test_masked_softmax_ignores_masked_positions_and_zeroes_empty_rows():
    scores = torch.tensor([[1.0, 2.0, 100.0], [5.0, 5.0, 5.0]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    weights = masked_softmax(scores, mask)
    expected = torch.cat([torch.softmax(torch.tensor([1.0, 2.0]), 0), torch.zeros(1)])
    torch.testing.assert_close(weights[0], expected)
    assert torch.all(weights[1] == 0)


def test_sequence_mask():
    assert sequence_mask(torch.tensor([0, 2, 3]), 3).tolist() == [
        [False, False, False], [True, True, False], [True, True, True]]


def test_mlp_with_dice_and_input_batch_norm_shapes():
    mlp = MLP([10, 7, 3], activation="dice", input_batch_norm=True)
    assert mlp(torch.randn(4, 5, 10)).shape == (4, 5, 3)
    with pytest.raises(ValueError, match="unknown activation 'swishy'"):
        MLP([4, 2], activation="swishy")


@pytest.fixture
def tiny_dataset(tiny_pipeline):
    config, train_data, _, _ = tiny_pipeline("DIN")
    return train_data._dataset


def test_feature_embedding_concatenates_id_token_pooled_token_seq_and_float(tiny_dataset, seeded):
    embedding = FeatureEmbedding(tiny_dataset, "item", 4)
    assert embedding.fields == ["item_id", "year", "genre", "price"]
    assert embedding.output_size == 16
    table = tiny_dataset.get_item_feature()
    ids = torch.tensor([[3, 7], [3, 1]])
    out = embedding(ids)
    assert out.shape == (2, 2, 16)
    item = 7
    genres = table["genre"][item]
    genres = genres[genres != 0]
    expected = torch.cat([
        embedding.embeddings["item_id"].weight[item],
        embedding.embeddings["year"].weight[table["year"][item]],
        embedding.embeddings["genre"].weight[genres].mean(0),
        table["price"][item] * embedding.float_weights["price"],
    ])
    torch.testing.assert_close(out[0, 1], expected)
    torch.testing.assert_close(out[0, 0], out[1, 0])


def test_feature_table_rows_are_indexed_by_id(tiny_dataset):
    # FeatureEmbedding relies on RecBole's item_feat[i] describing item i
    table = tiny_dataset.get_item_feature()
    assert torch.equal(table["item_id"], torch.arange(len(table)))


def test_user_embedding_excludes_user_id_unless_asked(tiny_dataset):
    assert FeatureEmbedding(tiny_dataset, "user", 4, include_id=False).fields == ["age", "gender"]
    assert FeatureEmbedding(tiny_dataset, "user", 4).fields[0] == "user_id"


def test_minibatch_l2_counts_each_used_row_once_scaled_by_occurrences(tiny_dataset):
    embedding = FeatureEmbedding(tiny_dataset, "item", 4, include_id=True)
    occurrences = torch.arange(embedding.num_rows).float() + 1
    embedding.set_row_occurrences(occurrences)
    table = tiny_dataset.get_item_feature()
    ids = torch.tensor([5, 5, 9])
    expected = 0.0
    for item in (5, 9):
        expected += embedding.embeddings["item_id"].weight[item].pow(2).sum() / occurrences[item]
    for year in table["year"][[5, 9]].unique():
        n_year = occurrences[table["year"] == year].sum()
        expected += embedding.embeddings["year"].weight[year].pow(2).sum() / n_year
    for genre in table["genre"][[5, 9]].unique():
        if genre == 0:
            continue
        n_genre = (occurrences.unsqueeze(-1) * (table["genre"] == genre)).sum()
        expected += embedding.embeddings["genre"].weight[genre].pow(2).sum() / n_genre
    torch.testing.assert_close(embedding.minibatch_l2(ids), expected)
    # only the rows used by the batch receive a gradient
    embedding.minibatch_l2(ids).backward()
    touched = embedding.embeddings["item_id"].weight.grad.abs().sum(-1).nonzero().flatten().tolist()
    assert touched == [5, 9]


def test_unknown_pooling_is_rejected(tiny_dataset):
    with pytest.raises(ValueError, match="token_seq_pooling"):
        FeatureEmbedding(tiny_dataset, "item", 4, token_seq_pooling="median")


def test_linear_split_is_a_view_of_one_parameter():
    # the activation unit keeps the paper's single Linear(4D, H): one weight, split only in forward
    unit = ActivationUnit(5, (3,))
    assert isinstance(unit.input_layer, nn.Linear) and unit.input_layer.weight.shape == (3, 20)


def test_token_seq_pooling_ignores_the_padding_row_whatever_its_weights(tiny_dataset):
    # a model's weight init (xavier on every nn.Embedding) overwrites the zero padding row
    embedding = FeatureEmbedding(tiny_dataset, "item", 4)
    nn.init.constant_(embedding.embeddings["genre"].weight, 3.0)
    genre_table = tiny_dataset.get_item_feature()["genre"]
    genre_counts = (genre_table != 0).sum(1)
    item = int(torch.nonzero((genre_counts > 0) & (genre_counts < genre_table.shape[1]))[0])  # some padding
    genres = embedding.embed_rows(torch.tensor([item]))[0, 8:12]
    torch.testing.assert_close(genres, torch.full((4,), 3.0))
