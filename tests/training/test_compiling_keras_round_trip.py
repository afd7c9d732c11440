"""A `.keras` file restores what was saved: compile options, optimizer (class, state, iterations).

Each test trains a tiny flow a few steps, saves it (`model.save`, or Keras' `ModelCheckpoint`),
loads it with `keras.models.load_model`, and trains one more step on the loaded model and on
the original: the two must end with the same weights and optimizer variables, which only
holds when the options, the optimizer state and the step counter all came back.
"""
import warnings

import keras
import numpy as np
import pytest

import tfp_glow as tg

CONFIG = tg.FlowConfig("glow", (8, 8, 1), dict(levels=1, steps=1, hidden_channels=8))
OPTIONS = {
    "sgd_no_warmup_no_clip": lambda: dict(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), warmup_steps=0,
                                          clip_norm=None, skip_nonfinite=False, max_nonfinite_steps=7, seed=5),
    "adam_warmup0_ema": lambda: dict(optimizer=keras.optimizers.Adam(2e-3), warmup_steps=0, clip_norm=3.0,
                                     seed=11, ema_decay=0.9),
    "cosine": lambda: dict(warmup_steps=3, lr_schedule="cosine", total_steps=20, seed=2),
}


@pytest.fixture(scope="module")
def digits():
    return tg.data.load_digits("train")[:192]


def _trained(options, x):
    model = tg.FlowModel(CONFIG, n_bits=5)
    model.compile(**options)
    model.fit(x[:128], batch_size=64, epochs=1, shuffle=False, verbose=0)
    return model


def _compile_options(model):
    opt = model.optimizer
    return {"optimizer": type(opt).__name__, "optimizer_config": opt.get_config(), "clip_norm": model.clip_norm,
            "skip_nonfinite": model.skip_nonfinite, "max_nonfinite_steps": model.max_nonfinite_steps,
            "noise_seed": model.noise_seed, "ema_decay": model.ema_decay, "jit_compile": model.jit_compile}


def _assert_same_state(a, b):
    assert int(a.optimizer.iterations) == int(b.optimizer.iterations)
    assert len(a.optimizer.variables) == len(b.optimizer.variables)
    for va, vb in zip(a.optimizer.variables, b.optimizer.variables):
        np.testing.assert_allclose(np.asarray(vb), np.asarray(va), rtol=1e-6, atol=1e-7, err_msg=va.path)
    assert len(a.weights) == len(b.weights)
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_allclose(np.asarray(wb), np.asarray(wa), rtol=1e-6, atol=1e-7, err_msg=wa.path)


def _continue_both(original, loaded, x):
    for m in (original, loaded):
        m.fit(x[128:], batch_size=64, epochs=1, shuffle=False, verbose=0)
    _assert_same_state(original, loaded)


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_a_keras_file_restores_the_compile_options_and_the_optimizer_state(tmp_path, digits, name):
    model = _trained(OPTIONS[name](), digits)
    path = str(tmp_path / "m.keras")
    model.save(path)
    with warnings.catch_warnings():
        # Keras only warns when it skips the optimizer's saved state
        warnings.filterwarnings("error", message=".*[Ss]kipping variable loading")
        loaded = keras.models.load_model(path)
    assert _compile_options(loaded) == _compile_options(model)
    assert int(loaded.optimizer.iterations) == 2
    _assert_same_state(model, loaded)
    _continue_both(model, loaded, digits)
    assert int(loaded.optimizer.iterations) == 3


def test_no_warmup_stays_off_and_a_float_rate_stays_a_float(tmp_path, digits):
    model = tg.FlowModel(CONFIG, n_bits=5)
    model.compile(**OPTIONS["sgd_no_warmup_no_clip"]())
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, keras.optimizers.SGD)
    assert not isinstance(loaded.optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule)
    assert float(loaded.optimizer.learning_rate) == pytest.approx(0.01)
    assert loaded.optimizer.momentum == pytest.approx(0.9) and loaded.clip_norm is None


def test_a_model_checkpoint_keras_file_resumes_exactly(tmp_path, digits):
    path = str(tmp_path / "ckpt.keras")
    model = tg.FlowModel(CONFIG, n_bits=5)
    model.compile(**OPTIONS["sgd_no_warmup_no_clip"]())
    model.fit(digits[:128], batch_size=64, epochs=1, shuffle=False, verbose=0,
              callbacks=[keras.callbacks.ModelCheckpoint(path)])
    loaded = keras.models.load_model(path)
    assert _compile_options(loaded) == _compile_options(model)
    _assert_same_state(model, loaded)
    _continue_both(model, loaded, digits)
