from __future__ import annotations

import math
import pickle

import pytest
import torch

from tle_kedro.models.tokenizers import ClinicalEmbedding, ImageTokenizer


def test_image_tokens_get_a_distinct_position_embedding_per_grid_cell() -> None:
    tok = ImageTokenizer(in_channels=8, d_model=6, token_grid=(3, 2, 2))
    features = torch.zeros(2, 12, 8)  # identical features at every position
    out = tok(features)
    assert out.shape == (2, 12, 6)
    assert torch.unique(out[0], dim=0).shape[0] == 12


def test_image_tokenizer_names_the_grid_fix_on_a_token_count_mismatch() -> None:
    tok = ImageTokenizer(in_channels=8, d_model=6, token_grid=(2, 1, 1))
    with pytest.raises(ValueError, match="grid_shape"):
        tok(torch.zeros(1, 3, 8))


def test_numeric_token_is_value_times_vector_plus_variable_embedding() -> None:
    tok = ClinicalEmbedding(n_numeric=2, cardinalities=[3], d_model=4)
    num = torch.tensor([[2.0, -1.0]])
    cat = torch.tensor([[1]])
    tokens, missing = tok(num, cat)
    expected = 2.0 * tok.value_vectors[0] + tok.variable[0] + tok.modality
    torch.testing.assert_close(tokens[0, 0], expected)
    expected_cat = tok.tables[0].weight[1] + tok.variable[2] + tok.modality
    torch.testing.assert_close(tokens[0, 2], expected_cat)
    assert missing.tolist() == [[False, False, False]]


def test_missing_values_are_masked_not_imputed() -> None:
    tok = ClinicalEmbedding(n_numeric=2, cardinalities=[3], d_model=4)
    tokens, missing = tok(torch.tensor([[math.nan, 0.0]]), torch.tensor([[-1]]))
    assert missing.tolist() == [[True, False, True]]
    assert torch.all(tokens[0, 0] == 0) and torch.all(tokens[0, 2] == 0)
    assert not torch.isnan(tokens).any()
    # a present zero is a real value: its token carries the variable embedding
    torch.testing.assert_close(tokens[0, 1], tok.variable[1] + tok.modality)


def test_out_of_range_category_code_raises() -> None:
    tok = ClinicalEmbedding(n_numeric=0, cardinalities=[2, 3], d_model=4)
    with pytest.raises(ValueError, match=r"column 0 has codes outside \[-1, 1\]"):
        tok(torch.zeros(1, 0), torch.tensor([[2, 0]]))


def test_wrong_number_of_clinical_columns_raises() -> None:
    tok = ClinicalEmbedding(n_numeric=2, cardinalities=[2], d_model=4)
    with pytest.raises(ValueError, match="2 numeric and 1 categorical"):
        tok(torch.zeros(1, 3), torch.zeros(1, 1, dtype=torch.int64))


def test_models_pickled_before_the_rename_still_load() -> None:
    emb = ClinicalEmbedding(n_numeric=2, cardinalities=[3], d_model=4)
    new = pickle.dumps(emb, protocol=2)
    old = new.replace(b"tokenizers\nClinicalEmbedding", b"tokenizers\nClinicalTokenizer")
    assert old != new
    loaded = pickle.loads(old)
    assert type(loaded) is ClinicalEmbedding
    torch.testing.assert_close(loaded.variable, emb.variable)
