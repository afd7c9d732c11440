"""`ConditionalFlowModel(label_dropout=p)`: classifier-free guidance's training, where a share `p`
of each step's labels become the uniform context (the mean class) that guided sampling
extrapolates from."""
import numpy as np
import pytest
import tensorflow as tf

import tfp_glow as tg
from tfp_glow.training import generation
from support import TINY_CONDITIONAL_GLOW


def test_drop_labels_replaces_a_share_of_rows_by_the_uniform_context_and_keeps_the_rest():
    k, n = 10, 20000
    onehot = tf.one_hot(np.arange(n) % k, k)
    out = generation.drop_labels(onehot, 0.3, tf.constant([3, 4])).numpy()
    uniform = np.all(np.isclose(out, 1.0 / k), axis=1)
    kept = np.all(out == onehot.numpy(), axis=1)
    assert np.all(uniform | kept)  # every row is either its label or the mean class
    assert abs(uniform.mean() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / n)  # a binomial share
    again = generation.drop_labels(onehot, 0.3, tf.constant([3, 4])).numpy()
    other = generation.drop_labels(onehot, 0.3, tf.constant([3, 5])).numpy()
    assert np.array_equal(out, again) and not np.array_equal(out, other)  # stateless: the seed decides
    assert np.array_equal(generation.drop_labels(onehot, 0.0, tf.constant([3, 4])).numpy(), onehot.numpy())


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), True, "0.1"])
def test_bad_label_dropout_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"label_dropout must be a float in \[0, 1\)"):
        tg.ConditionalFlowModel(TINY_CONDITIONAL_GLOW, n_bits=5, label_dropout=bad)


def test_label_dropout_survives_get_config():
    model = tg.ConditionalFlowModel(TINY_CONDITIONAL_GLOW, n_bits=5, label_dropout=0.25)
    assert model.get_config()["label_dropout"] == 0.25
    assert tg.ConditionalFlowModel.from_config(model.get_config()).label_dropout == 0.25
    assert tg.ConditionalFlowModel(TINY_CONDITIONAL_GLOW, n_bits=5).label_dropout == 0.0  # off by default


def test_make_flow_model_hands_label_dropout_to_the_conditional_model():
    from tfp_glow.training.conditional import make_flow_model
    model = make_flow_model(TINY_CONDITIONAL_GLOW, n_bits=5, label_dropout=0.2)
    assert isinstance(model, tg.ConditionalFlowModel) and model.label_dropout == 0.2
    assert make_flow_model(TINY_CONDITIONAL_GLOW, n_bits=5, label_dropout=None).label_dropout == 0.0


def test_the_train_step_drops_labels_and_evaluation_does_not(monkeypatch):
    calls = []
    real = generation.drop_labels

    def spy(context, rate, seed):
        calls.append(float(rate))
        return real(context, rate, seed)

    monkeypatch.setattr(generation, "drop_labels", spy)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 32, size=(32, 8, 8, 1)).astype(np.uint8)
    y = rng.integers(0, 10, size=32)
    model = tg.ConditionalFlowModel(TINY_CONDITIONAL_GLOW, n_bits=5, label_dropout=0.5)
    model.compile(jit_compile=False)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert calls and set(calls) == {0.5}  # traced into the train step with the model's rate
    traced = len(calls)
    model.evaluate(x, y, batch_size=16, verbose=0)
    model.sample(4, labels=[0, 1, 2, 3])
    assert len(calls) == traced  # evaluation and sampling use the labels as given
    # off: the train step never calls it
    calls.clear()
    plain = tg.ConditionalFlowModel(TINY_CONDITIONAL_GLOW, n_bits=5)
    plain.compile(jit_compile=False)
    plain.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert calls == []
