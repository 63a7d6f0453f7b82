"""The strong encoder's batched, threaded features match encoding each text alone."""

from __future__ import annotations

import numpy as np
import torch

from sandbox.cache.encoders import get_encoder

TEXTS = [
    "dog: a member of the genus Canis",
    "oak: a deciduous tree of the genus Quercus with lobed leaves and acorns; its hard wood is used "
    "for furniture, floors and barrels",
    "idea",
    "river: a large natural stream of water (larger than a creek)",
    "hammer: a hand tool with a heavy rigid head and a handle; used to deliver an impulsive force",
    "joy",
    "tax: charge against a citizen's person or property or activity for the support of government",
] * 3


def test_batched_features_match_each_text_encoded_alone():
    enc = get_encoder("minilm-l6")
    enc.batch_size = 4  # several batches of unequal lengths, run side by side
    threads = torch.get_num_threads()
    batched = enc.encode(TEXTS)
    assert torch.get_num_threads() == threads  # the caller's thread setting is restored
    enc.batch_size = 1  # no padding at all: the reference
    alone = enc.encode(TEXTS)
    assert set(batched) == {"layer_2", "layer_3", "layer_5", "final"}
    for name, array in batched.items():
        assert array.shape == (len(TEXTS), 384)
        np.testing.assert_allclose(array, alone[name], atol=2e-5)
    # each row belongs to its own text (a mix-up of rows would break this)
    assert not np.allclose(batched["final"][0], batched["final"][1])
    np.testing.assert_allclose(batched["final"][0], batched["final"][7], atol=1e-6)


def test_no_texts_give_empty_features():
    out = get_encoder("minilm-l6").encode([])
    assert out["final"].shape == (0, 384)
