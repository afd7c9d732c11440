"""tfp_glow.models.tarflow_builder: TarFlow's block stack, its density against the blocks' own TFP
log-dets, FlowConfig("tarflow"), and bad arguments."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_glow as tg
from tfp_glow.bijectors import TransformerAutoregressive
from registry import randomize

tfd = tfp.distributions


def _blocks(dist):
    return list(dist.bijector.bijectors)


def test_the_stack_alternates_token_orders_and_keeps_the_image_shape():
    dist = tg.models.tarflow((8, 8, 1), patch_size=2, width=32, blocks=3, layers_per_block=1)
    blocks = _blocks(dist)
    assert [type(b) for b in blocks] == [TransformerAutoregressive] * 3
    identity = tuple(range(16))
    assert [b.order for b in blocks] == [identity, identity[::-1], identity]
    assert [b.num_tokens for b in blocks] == [16, 16, 16]
    assert tuple(dist.event_shape) == (8, 8, 1) and tuple(dist.distribution.event_shape) == (8, 8, 1)
    # heads default to the reference's 64 per head, at least one
    assert tg.models.tarflow_bijector((8, 8, 1), patch_size=2, width=128, blocks=1, layers_per_block=1
                                      ).bijectors[0].network.heads == 2


def test_log_prob_is_the_base_density_plus_every_blocks_tfp_log_det():
    """Reference: the base `N(0, I)` of the latent and each block's `inverse_log_det_jacobian`
    through TFP's public API, block by block (not the package's chain walk)."""
    dist = tg.models.tarflow((4, 4, 2), patch_size=2, width=16, blocks=2, layers_per_block=1, heads=2)
    randomize(dist, seed=3, scale=0.3)
    x = tf.random.stateless_uniform((5, 4, 4, 2), [1, 2], -0.5, 0.5)
    z, ildj = x, tf.zeros([5])
    for block in _blocks(dist):  # data -> latent
        ildj += block.inverse_log_det_jacobian(z, event_ndims=3)
        z = block.inverse(z)
    expected = tfd.Independent(tfd.Normal(tf.zeros([4, 4, 2]), 1.0), 3).log_prob(z) + ildj
    np.testing.assert_allclose(dist.log_prob(x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(tg.bijectors.log_prob(dist, x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-4)
    assert np.ptp(ildj.numpy()) > 1e-3  # the randomised blocks do scale the data


def test_flow_config_builds_tarflow_and_round_trips_through_its_dict():
    cfg = tg.FlowConfig("tarflow", (8, 8, 1), dict(patch_size=4, width=32, blocks=2, layers_per_block=1))
    again = tg.FlowConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert len(_blocks(again.build())) == 2


def test_a_conditional_stack_needs_its_context():
    dist = tg.models.tarflow((4, 4, 1), patch_size=2, width=16, blocks=2, layers_per_block=1, heads=2, num_classes=3)
    x = tf.zeros((2, 4, 4, 1))
    y = tf.one_hot([0, 2], 3)
    lp = tg.bijectors.log_prob(dist, x, conditional_input=y)
    assert lp.shape == (2,) and np.isfinite(lp.numpy()).all()
    np.testing.assert_allclose(dist.log_prob(x, bijector_kwargs={"conditional_input": y}).numpy(), lp.numpy(),
                               rtol=1e-5, atol=1e-4)
    randomize(dist, seed=1)
    other = tg.bijectors.log_prob(dist, x, conditional_input=tf.one_hot([1, 1], 3))
    assert tf.reduce_max(tf.abs(tg.bijectors.log_prob(dist, x, conditional_input=y) - other)).numpy() > 1e-3
    with pytest.raises(ValueError, match="conditional"):
        tg.bijectors.log_prob(dist, x)


@pytest.mark.parametrize("kwargs,message", [
    (dict(patch_size=3), "patch_size 3 must divide"),
    (dict(blocks=0), "blocks must be a positive int"),
    (dict(width=48, heads=5), "divisible by heads"),
    (dict(num_classes=1), "num_classes"),
])
def test_bad_arguments_are_clear_errors(kwargs, message):
    args = dict(patch_size=2, width=32, blocks=1, layers_per_block=1, heads=2)
    with pytest.raises(ValueError, match=message):
        tg.models.tarflow((8, 8, 1), **{**args, **kwargs})


def test_a_vector_event_is_refused():
    with pytest.raises(ValueError, match=r"event shape \[H, W, C\]"):
        tg.models.tarflow((8,), patch_size=2)


def test_guidance_reaches_every_block_through_the_chain():
    dist = tg.models.tarflow((4, 4, 1), patch_size=2, width=16, blocks=2, layers_per_block=1, heads=2, num_classes=3)
    randomize(dist, seed=2)
    z = tf.random.stateless_normal((2, 4, 4, 1), [1, 1])
    c = tf.one_hot([0, 1], 3)
    x = z
    for block in reversed(_blocks(dist)):  # latent -> data, block by block
        x = block.forward(x, conditional_input=c, guidance=1.0)
    np.testing.assert_allclose(dist.bijector.forward(z, conditional_input=c, guidance=1.0).numpy(), x.numpy(),
                               atol=1e-5)
    unguided = dist.bijector.forward(z, conditional_input=c)
    assert tf.reduce_max(tf.abs(unguided - x)).numpy() > 1e-3
