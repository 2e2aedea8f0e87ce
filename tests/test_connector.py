"""The connector (attention pooling + SwiGLU projector) against transformers' Molmo2Adapter."""

import jax.numpy as jnp
import numpy as np

from molmo2_jax.connector import gather_windows, masked_mean_query


def test_connector_matches_transformers_adapter(hf_molmo2, our_molmo2):
    import torch

    _, ref = hf_molmo2
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(3, 16, 64)).astype(np.float32)
    pooling = rng.integers(0, 48, (10, 4))
    pooling[0, 1:] = -1
    pooling[3, ::2] = -1
    with torch.no_grad():
        want = ref.model.multi_modal_projector(torch.from_numpy(feats), torch.from_numpy(pooling)).last_hidden_state
    got, valid = our_molmo2.connector(jnp.asarray(feats), jnp.asarray(pooling))
    assert bool(valid.all())
    assert np.max(np.abs(np.asarray(got) - want.numpy())) <= 1e-5


def test_query_is_mean_of_valid_patches_only():
    feats = jnp.arange(8.0).reshape(1, 4, 2)  # patches [[0,1],[2,3],[4,5],[6,7]]
    windows, valid = gather_windows(feats, jnp.asarray([[0, 2, -1, -1]]))
    np.testing.assert_allclose(np.asarray(masked_mean_query(windows, valid))[0, 0], [2.0, 3.0])
