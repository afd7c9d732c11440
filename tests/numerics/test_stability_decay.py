"""The learning-rate decay after the warmup: `stability.CosineDecayAfterWarmup`,
`FlowModel.compile(lr_schedule="cosine", total_steps=N)`, `tfp-glow train --lr-schedule`."""
import json
import math
import os

import keras
import numpy as np
import pytest

import tfp_glow as tg
from tfp_glow import recipes, training
from tfp_glow.numerics import stability
from cli_runner import run_cli

TOY = tg.FlowConfig("realnvp", (2,), dict(couplings_per_stage=2, hidden=(8, 8)))
STEPS = [0, 1, 9, 10, 11, 25, 55, 99, 100, 101, 150]


def _closed_form(t, lr, warmup, total):
    """openai/glow's linear warmup, then a half cosine from `lr` to 0 at step `total`."""
    if t < warmup:
        return lr * (t + 1) / warmup
    s = min(1.0, (t - warmup) / (total - warmup))
    return lr * 0.5 * (1 + math.cos(math.pi * s))


def _values(schedule, steps=STEPS):
    return np.array([float(schedule(t)) for t in steps])


def test_cosine_after_warmup_equals_the_closed_form_and_keras_cosine_decay():
    lr, warmup, total = 2e-3, 10, 100
    schedule = stability.learning_rate_schedule(lr, warmup, "cosine", total)
    expected = np.array([_closed_form(t, lr, warmup, total) for t in STEPS])
    np.testing.assert_allclose(_values(schedule), expected, rtol=1e-5, atol=lr * 1e-6)  # float32 cos near pi
    assert float(schedule(total)) == pytest.approx(0.0, abs=1e-12) and float(schedule(warmup)) == pytest.approx(lr)
    # the decay alone is Keras' CosineDecay started at the end of the warmup (alpha included)
    decay = stability.CosineDecayAfterWarmup(lr, total - warmup, warmup, alpha=0.1)
    keras_cosine = keras.optimizers.schedules.CosineDecay(lr, total - warmup, alpha=0.1)
    after = [t for t in STEPS if t >= warmup]
    np.testing.assert_allclose(_values(decay, after), [float(keras_cosine(t - warmup)) for t in after], rtol=1e-5)
    np.testing.assert_allclose(_values(decay, [0, 5, warmup]), lr, rtol=1e-6)  # constant during the warmup


def test_constant_is_the_warmup_alone_and_no_warmup_is_the_bare_decay():
    assert stability.learning_rate_schedule(1e-3, 0) == 1e-3
    warm = stability.learning_rate_schedule(1e-3, 4)
    np.testing.assert_allclose(_values(warm, [0, 1, 3, 50]), [2.5e-4, 5e-4, 1e-3, 1e-3], rtol=1e-6)
    bare = stability.learning_rate_schedule(1e-3, 0, "cosine", 8)
    assert isinstance(bare, stability.CosineDecayAfterWarmup)
    np.testing.assert_allclose(_values(bare, [0, 4, 8]), [1e-3, 5e-4, 0.0], atol=1e-10)


def test_the_schedule_survives_serialization_and_a_keras_file(tmp_path):
    schedule = stability.learning_rate_schedule(3e-3, 5, "cosine", 40)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(again, stability.LinearWarmup) and isinstance(again.base, stability.CosineDecayAfterWarmup)
    np.testing.assert_allclose(_values(again), _values(schedule), rtol=1e-7)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(schedule), loss="mse")
    model.fit(np.ones((8, 3)), np.ones((8, 1)), epochs=1, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    rate = loaded.optimizer._learning_rate
    assert isinstance(rate, stability.LinearWarmup) and rate.base.get_config() == schedule.base.get_config()
    np.testing.assert_allclose(_values(rate), _values(schedule), rtol=1e-7)


def test_flow_model_compile_with_cosine_follows_the_schedule():
    lr, warmup, total = 4e-3, 2, 6
    model = tg.FlowModel(TOY, n_bits=None)
    model.compile(optimizer=keras.optimizers.Adam(lr), warmup_steps=warmup, lr_schedule="cosine", total_steps=total,
                  jit_compile=False)
    batch = tg.data.toy_2d("moons", 32).astype(np.float32)
    model.initialize(batch)
    seen = []
    for _ in range(total + 2):
        seen.append(float(model.optimizer.learning_rate))  # the rate of the next step
        model.train_on_batch(batch)
    np.testing.assert_allclose(seen, [_closed_form(t, lr, warmup, total) for t in range(total + 2)], atol=1e-9)


@pytest.mark.parametrize("kwargs, match", [
    (dict(lr_schedule="linear"), "lr_schedule must be one of"),
    (dict(lr_schedule="cosine"), "needs total_steps"),
    (dict(lr_schedule="cosine", total_steps=200, warmup_steps=200), "needs total_steps"),
    (dict(lr_schedule="cosine", total_steps=1.5e3), "needs total_steps"),
    (dict(total_steps=1000), "total_steps applies to lr_schedule='cosine' only"),
    (dict(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9)),
          lr_schedule="cosine", total_steps=1000), "has the schedule ExponentialDecay"),
])
def test_compile_validates_the_schedule(kwargs, match):
    model = tg.FlowModel(TOY, n_bits=None)
    with pytest.raises(ValueError, match=match):
        model.compile(jit_compile=False, **kwargs)


def test_total_steps_of_a_recipe():
    recipe = recipes.recipe_for("image", (8, 8, 1), "glow", "digits")
    assert recipes.total_steps(recipe.merged(epochs=3), 1293) == 3 * (1293 // 64)
    assert recipes.total_steps(recipe.merged(epochs=3, steps_per_epoch=7)) == 21
    assert recipes.total_steps(recipe.merged(epochs=2), 10) == 2  # one partial batch per epoch
    assert recipes.total_steps(recipe) is None
    assert recipe.lr_schedule == "constant" and recipe.ema_decay is None  # the defaults, for now


def test_cli_records_the_schedule_and_keeps_it_on_resume(tmp_path):
    run_dir = str(tmp_path / "cosine")
    base = ["--no-xla", "--run-dir", run_dir]
    rc, out, err = run_cli(["train", "--levels", "1", "--steps", "1", "--hidden", "8", "--epochs", "1",
                            "--steps-per-epoch", "3", "--warmup-steps", "2", "--lr-schedule", "cosine", *base])
    assert rc == 0, out + err
    assert "then cosine" in out
    with open(os.path.join(run_dir, "config.json")) as f:
        assert json.load(f)["lr_schedule"] == "cosine"
    rc, out, err = run_cli(["train", "--resume", "--epochs", "2", *base])
    assert rc == 0, out + err
    assert "then cosine" in out
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    assert config["lr_schedule"] == "cosine" and config["epochs_done"] == 2
