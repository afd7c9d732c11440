"""TFP idioms: the builders' `name` and `validate_args`; `sample` with a batch of
temperatures and a repeatable int seed."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_glow import data, models, training
from tfp_glow import serving
from tfp_glow.bijectors import log_prob as lean_log_prob

SMALL = {"glow": ((8, 8, 1), dict(levels=2, steps=1, hidden_channels=8)),
         "realnvp": ((2,), dict(hidden=(8,))),
         "nice": ((4,), dict(hidden=(8,), couplings=2))}


def _build(flow, **kwargs):
    keras.utils.set_random_seed(0)  # the same conditioner initialisation every time
    shape, args = SMALL[flow]
    return getattr(models, flow)(shape, **args, **kwargs), shape


@pytest.mark.parametrize("flow", sorted(SMALL))
def test_builders_take_name_and_validate_args(flow):
    plain, shape = _build(flow)
    assert plain.name == flow and plain.validate_args is False
    checked, _ = _build(flow, name="my_flow", validate_args=True)
    assert checked.name == "my_flow" and checked.validate_args is True
    x = np.random.default_rng(0).uniform(-0.4, 0.4, (3, *shape)).astype(np.float32)
    # the checks change no number: TFP's log_prob and the lean walk agree with the plain flow
    np.testing.assert_allclose(checked.log_prob(x).numpy(), plain.log_prob(x).numpy(), rtol=1e-6)
    np.testing.assert_allclose(lean_log_prob(checked, tf.constant(x)).numpy(), plain.log_prob(x).numpy(), rtol=1e-5)
    assert len(checked.trainable_variables) == len(plain.trainable_variables)

    bad = x.copy()
    bad[1].flat[0] = np.nan
    assert np.isnan(plain.log_prob(bad).numpy()[1])  # unchecked: a silent NaN
    with pytest.raises(tf.errors.InvalidArgumentError, match="my_flow_check_data: the data holds NaN or Inf"):
        checked.log_prob(bad)
    with pytest.raises(tf.errors.InvalidArgumentError, match="the data holds NaN or Inf"):
        lean_log_prob(checked, tf.constant(bad))  # FlowModel's path
    latent = np.zeros((2, *shape), np.float32)
    latent[0].flat[0] = np.inf
    with pytest.raises(tf.errors.InvalidArgumentError, match="my_flow_check_latent: the latent holds NaN or Inf"):
        checked.bijector.forward(latent)
    wrong = np.zeros((2, *[d * 2 for d in shape[:-1]], shape[-1] + 1), np.float32)
    with pytest.raises(ValueError, match=r"my_flow_check_data: the data must have event shape"):
        checked.log_prob(wrong)


def test_validate_args_checks_shapes_known_only_at_run_time():
    checked, _ = _build("realnvp", validate_args=True)
    fn = tf.function(lambda x: checked.log_prob(x), input_signature=[tf.TensorSpec([None, None], tf.float32)])
    assert fn(tf.zeros([3, 2])).shape == (3,)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"must have event shape \[2\]"):
        fn(tf.zeros([3, 5]))


def test_bad_builder_arguments():
    with pytest.raises(ValueError, match="validate_args must be True or False"):
        models.nice((4,), hidden=(8,), validate_args="yes")
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        models.nice((4,), hidden=(8,), name="")


def test_flow_model_with_validate_args_evaluates_and_refuses_nan():
    config = models.FlowConfig("realnvp", (2,), dict(hidden=(8,), validate_args=True, name="checked"))
    model = training.FlowModel(config, n_bits=None)
    x = data.toy_2d("moons", seed=0)[:64].astype(np.float32)
    model.initialize(x)
    model.compile(jit_compile=False)
    assert np.isfinite(model.evaluate(x, batch_size=32, return_dict=True, verbose=0)["bits_per_dim"])
    bad = x.copy()
    bad[3, 0] = np.inf
    with pytest.raises(ValueError, match="must be finite"):  # FlowModel's own input check, first
        model(bad)
    with pytest.raises(tf.errors.InvalidArgumentError, match="the data holds NaN or Inf"):
        model.log_prob_and_bpd(tf.constant(bad))  # the flow's validate_args check behind it


@pytest.fixture(scope="module")
def glow_model():
    keras.utils.set_random_seed(1)
    model = training.FlowModel(models.FlowConfig("glow", (8, 8, 1), SMALL["glow"][1]), n_bits=5)
    model.initialize(data.load_digits("train")[:128])
    return model


def test_sample_takes_a_batch_of_temperatures(glow_model):
    model = glow_model
    temps = [0.0, 0.5, 1.0]
    x = model.sample(4, temperature=temps, seed=3).numpy()
    assert x.shape == (4, 3, 8, 8, 1)  # TFP's [sample, batch, event]
    # the reference: one standard normal draw from the stateless seed [3, 0], scaled per T
    eps = tf.random.stateless_normal([4, *model.latent_shape], seed=[3, 0])
    for i, t in enumerate(temps):
        np.testing.assert_allclose(x[:, i], model.decode(t * eps).numpy(), atol=1e-5)
        np.testing.assert_allclose(x[:, i], model.sample(4, t, seed=3).numpy(), atol=1e-5)
    # T = 0 decodes the zero latent: the four samples coincide
    np.testing.assert_allclose(x[:, 0], np.broadcast_to(x[:1, 0], x[:, 0].shape), atol=1e-6)
    grid = model.sample(2, temperature=[[0.5, 0.7, 0.9], [1.0, 1.1, 1.2]], seed=0)
    assert grid.shape == (2, 2, 3, 8, 8, 1)
    images = model.sample_images(2, temperature=[0.5, 1.0], seed=0)
    assert images.dtype == tf.uint8 and images.shape == (2, 2, 8, 8, 1)
    with pytest.raises(ValueError, match="temperature must be finite and >= 0"):
        model.sample(2, temperature=[0.5, -1.0])


def test_level_temperatures_scale_each_level_of_the_same_draw(glow_model):
    from tfp_glow.analysis import latent

    model = glow_model
    eps = tf.random.stateless_normal([3, *model.latent_shape], seed=[6, 0])
    levels = latent.level_map(model)
    scale = np.where(levels == 0, 0.2, 0.9).astype(np.float32)
    got = model.sample(3, temperature=[1.0, 0.5], seed=6, level_temperatures=[0.2, 0.9]).numpy()
    for i, t in enumerate([1.0, 0.5]):
        np.testing.assert_allclose(got[:, i], model.decode(t * eps * scale).numpy(), atol=1e-5)


def test_an_int_seed_gives_the_same_samples(glow_model):
    model = glow_model
    a, b = model.sample(5, 0.7, seed=11).numpy(), model.sample(5, 0.7, seed=11).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, model.sample(5, 0.7, seed=12).numpy())
    # the same samples as the SavedModel's sample signature draws for this seed
    np.testing.assert_allclose(a, serving.sample_stateless(model, 5, 0.7, 11)["x"].numpy(), atol=1e-5)
    # a stateless pair works too; no seed draws new samples each call
    np.testing.assert_array_equal(model.sample(2, 1.0, seed=[4, 2]).numpy(), model.sample(2, 1.0, seed=[4, 2]).numpy())
    assert not np.allclose(model.sample(2, 1.0).numpy(), model.sample(2, 1.0).numpy())
