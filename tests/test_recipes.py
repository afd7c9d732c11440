"""The library's defaults and held-out splits: `tfp_glow.recipes` and `tfp_glow.data.splits`, which
the CLI only reports (tests/cli/test_train_and_evaluate.py runs the command line itself)."""
import os

import numpy as np
import pytest

import tfp_glow as tg
from tfp_glow import data as data_lib
from tfp_glow import recipes
from tfp_glow.data import splits
from tfp_glow.cli import options
from tfp_glow.training import FlowModel


# ------------------------------------------------------------------------ defaults per kind
def test_digits_8x8_is_a_small_glow_at_5_bits():
    r = recipes.recipe_for("image", (8, 8, 1), None, "digits")
    assert r.flow == "glow"
    assert r.flow_kwargs == {"levels": 2, "steps": 8, "hidden_channels": 128, "coupling": "affine", "lu": True}
    assert (r.n_bits, r.learning_rate, r.warmup_steps, r.epochs, r.batch_size) == (5, 2e-3, 50, 30, 64)
    assert r.steps_per_epoch is None and r.clip_norm == 50.0


@pytest.mark.parametrize("name,shape,levels", [("digits28", (28, 28, 1), 2), ("photos32", (32, 32, 3), 3),
                                               (None, (8, 12, 3), 2), (None, (10, 10, 1), 1)])
def test_larger_images_use_the_most_levels_dividing_the_size(name, shape, levels):
    r = recipes.recipe_for("image", shape, None, name)
    assert r.flow == "glow" and r.flow_kwargs["levels"] == levels
    if max(shape[:2]) > 8:
        assert r.flow_kwargs["hidden_channels"] == 256 and r.n_bits == 8 and r.learning_rate == 1e-3
        assert r.warmup_steps == 200 and r.epochs == 10
        # issue 18's measured defaults: the weight average; per-channel split priors for colour
        assert r.ema_decay == 0.999
        assert r.flow_kwargs.get("split_prior", True) == ("channel" if shape[2] == 3 else True)
    else:
        assert "split_prior" not in r.flow_kwargs and r.ema_decay is None


def test_the_recipes_glow_trains_with_its_weight_average():
    """The CLI's model for 28x28 digits: built from the recipe, it holds an EMA and the
    conditional split priors, and an explicit --ema 0 turns the average off."""
    from tfp_glow.bijectors.networks import ChannelParameters
    model, recipe = recipes.build_model("digits28", levels=2, steps=1, hidden=8)
    assert model.ema_decay == 0.999
    priors = [m.conditioner for m in model.distribution.bijector.submodules if isinstance(m, tg.bijectors.Split)]
    assert priors and not any(isinstance(p, ChannelParameters) for p in priors)
    off, _ = recipes.build_model("digits28", levels=2, steps=1, hidden=8, ema_decay=0)
    assert off.ema_decay is None


def test_vectors_default_to_realnvp_with_a_fixed_number_of_steps():
    r = recipes.recipe_for("vector", (2,))
    assert r.flow == "realnvp" and r.flow_kwargs == {"couplings_per_stage": 8, "hidden": [128, 128]}
    assert (r.n_bits, r.batch_size, r.steps_per_epoch, r.epochs, r.warmup_steps) == (None, 256, 100, 20, 100)
    assert recipes.recipe_for("vector", (2,), "nice").flow_kwargs == {"couplings": 4, "hidden": [256, 256, 256]}


def test_nice_on_digits_trains_longer_at_a_higher_rate():
    r = recipes.recipe_for("image", (8, 8, 1), "nice", "digits")
    assert (r.epochs, r.learning_rate) == (100, 1e-2)


def test_recipe_for_without_overrides_is_deterministic_and_fresh():
    a = recipes.recipe_for("image", (8, 8, 1), None, "digits")
    b = recipes.recipe_for("image", (8, 8, 1), None, "digits")
    assert a == b and a.flow_kwargs is not b.flow_kwargs


# -------------------------------------------------------------------------------- overrides
def test_explicit_overrides_win():
    r = recipes.recipe_for("image", (8, 8, 1), "glow", "digits", levels=1, steps=2, hidden=16, coupling="additive",
                           lu=False, n_bits=8, epochs=3, learning_rate=5e-4, warmup_steps=0, clip_norm=0)
    assert r.flow_kwargs == {"levels": 1, "steps": 2, "hidden_channels": 16, "coupling": "additive", "lu": False}
    assert (r.n_bits, r.epochs, r.learning_rate, r.warmup_steps) == (8, 3, 5e-4, 0)
    assert r.clip_norm == 0  # 0 is given (off), not "use the default"
    assert r.batch_size == 64  # what is not given stays the default


def test_none_means_not_given():
    default = recipes.recipe_for("image", (28, 28, 1), "glow", "digits28")
    assert recipes.recipe_for("image", (28, 28, 1), "glow", "digits28", levels=None, epochs=None) == default


@pytest.mark.parametrize("flow,kind,shape,hidden,expected", [
    ("realnvp", "vector", (2,), (32,), {"couplings_per_stage": 3, "hidden": [32, 32]}),
    ("realnvp", "vector", (2,), (32, 16, 8), {"couplings_per_stage": 3, "hidden": [32, 16, 8]}),
    ("nice", "image", (8, 8, 1), 24, {"couplings": 3, "hidden": [24, 24, 24]}),
    ("realnvp", "image", (8, 8, 1), [16], {"levels": 2, "couplings_per_stage": 3, "hidden": 16}),
])
def test_steps_and_hidden_map_onto_each_builder(flow, kind, shape, hidden, expected):
    assert recipes.recipe_for(kind, shape, flow, steps=3, hidden=hidden).flow_kwargs == expected


def test_realnvp_image_options_are_added_only_when_given():
    r = recipes.recipe_for("image", (8, 8, 1), "realnvp", logit_alpha=0.05, learn_prior=True)
    assert r.flow_kwargs["logit_alpha"] == 0.05 and r.flow_kwargs["learn_prior"] is True
    plain = recipes.recipe_for("image", (8, 8, 1), "realnvp", learn_prior=False)
    assert "logit_alpha" not in plain.flow_kwargs and "learn_prior" not in plain.flow_kwargs


def test_given_builder_arguments_keep_what_the_options_do_not_name():
    stored = {"levels": 2, "couplings_per_stage": 2, "hidden": 8, "logit_alpha": 0.05}
    r = recipes.recipe_for("image", (8, 8, 1), "realnvp", flow_kwargs=stored, steps=4)
    assert r.flow_kwargs == {**stored, "couplings_per_stage": 4} and stored["couplings_per_stage"] == 2


@pytest.mark.parametrize("given,expected", [("conditional", True), ("channel", "channel"), ("none", False),
                                            (False, False)])
def test_split_prior_option_reaches_the_glow_builder(given, expected):
    r = recipes.recipe_for("image", (16, 16, 3), "glow", "faces", split_prior=given)
    assert r.flow_kwargs["split_prior"] == expected
    from tfp_glow import models
    from tfp_glow.bijectors import networks
    dist = models.glow((16, 16, 3), **{**r.flow_kwargs, "levels": 2, "steps": 1, "hidden_channels": 8})

    def conditioners(b):  # the split priors' networks, through chains, Invert and Split's inner flow
        found = [b._conditioner] if hasattr(b, "_conditioner") and b._conditioner is not None else []
        for child in list(getattr(b, "bijectors", [])) + [getattr(b, "bijector", None), getattr(b, "_inner", None)]:
            found += conditioners(child) if child is not None else []
        return found
    priors = [n for n in conditioners(dist.bijector) if "split_prior" in n.name or "prior" in n.name]
    assert bool(priors) == (expected is not False)  # a learned split prior unless "none"
    assert all(isinstance(n, networks.ChannelParameters) == (expected == "channel") for n in priors)


def test_merged_replaces_given_fields_only():
    r = recipes.recipe_for("vector", (2,))
    assert r.merged(epochs=None, batch_size=32).batch_size == 32
    assert r.merged(epochs=None).epochs == r.epochs
    with pytest.raises(TypeError, match="lr"):
        r.merged(lr=1e-3)


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("args,kwargs,pattern", [
    (("audio", (2,)), {}, "kind must be 'image' or 'vector'"),
    (("image", (8, 8, 1), "ffjord"), {}, "unknown flow 'ffjord'"),
    (("image", (None, None, 3), "glow", "faces"), {}, "'faces' has images of varying size"),
])
def test_bad_kind_flow_or_shape_raise_value_error(args, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        recipes.recipe_for(*args, **kwargs)


@pytest.mark.parametrize("kind,shape,flow,kwargs,option", [
    ("vector", (2,), "glow", {}, "flow"),
    ("vector", (2,), "realnvp", {"n_bits": 5}, "n_bits"),
    ("image", (8, 8, 1), "nice", {"levels": 2}, "levels"),
    ("vector", (2,), "realnvp", {"levels": 2}, "levels"),
    ("image", (8, 8, 1), "realnvp", {"coupling": "additive"}, "coupling"),
    ("image", (8, 8, 1), "glow", {"logit_alpha": 0.1}, "logit_alpha"),
    ("image", (8, 8, 1), "glow", {"hidden": (8, 8)}, "hidden"),
    ("image", (8, 8, 1), "realnvp", {"split_prior": "channel"}, "split_prior"),
    ("image", (8, 8, 1), "glow", {"split_prior": "gaussian"}, "split_prior"),
])
def test_options_that_do_not_apply_raise_option_error(kind, shape, flow, kwargs, option):
    with pytest.raises(recipes.OptionError) as info:
        recipes.recipe_for(kind, shape, flow, **kwargs)
    assert isinstance(info.value, ValueError)
    assert (info.value.option, info.value.flow, info.value.kind) == (option, flow, kind)


def test_unknown_override_is_a_type_error():
    with pytest.raises(TypeError, match="depth"):
        recipes.recipe_for("image", (8, 8, 1), depth=3)


# ---------------------------------------------------------------------------- build_model
def test_build_model_builds_and_compiles_the_recipe():
    model, r = recipes.build_model("digits", levels=1, steps=1, hidden=8, learning_rate=5e-3, warmup_steps=0)
    assert isinstance(model, FlowModel) and model.optimizer is not None
    assert model.config_.flow == "glow" and model.event_shape == (8, 8, 1) and model.n_bits == r.n_bits == 5
    assert model.config_.kwargs == r.flow_kwargs and r.flow_kwargs["hidden_channels"] == 8
    assert np.isclose(np.asarray(model.optimizer.learning_rate), 5e-3) and model.clip_norm == 50.0
    x, _ = splits.load_split("digits", "train")
    history = model.fit(data_lib.make_dataset(x[:32], 16), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])


def test_build_model_on_vectors_and_from_a_given_recipe():
    model, r = recipes.build_model("moons", "nice", steps=2, hidden=8, clip_norm=0)
    assert model.n_bits is None and model.config_.kwargs == {"couplings": 2, "hidden": [8, 8, 8]}
    assert model.clip_norm is None  # 0 = off
    again, same = recipes.build_model("moons", recipe=r, info=splits.load_split("moons", "test")[1])
    assert same is r and again.config_.to_dict() == model.config_.to_dict()
    with pytest.raises(TypeError, match="not both"):
        recipes.build_model("moons", "nice", recipe=r)


def test_default_run_dir_names_the_flow_and_the_data():
    assert recipes.default_run_dir("glow", "digits") == os.path.join("runs", "glow-digits")
    assert recipes.default_run_dir("nice", "some/dir/faces.npz") == os.path.join("runs", "nice-faces")
    assert recipes.default_run_dir("glow", "tfds:celeb a/") == os.path.join("runs", "glow-celeb_a")
    assert (recipes.default_flow("image"), recipes.default_flow("vector")) == ("glow", "realnvp")


# --------------------------------------------------------------------------------- splits
def _npz(tmp_path, name, n=50, **extra):
    x = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 1), np.uint8)
    path = str(tmp_path / name)
    np.savez(path, x=x, **extra)
    return path


def _ids(x):
    return set(x[:, 0, 0, 0].tolist())


def test_held_out_fractions_are_disjoint_deterministic_and_sized(tmp_path):
    path = _npz(tmp_path, "x.npz", n=100)
    parts = {s: splits.load_split(path, s, val_fraction=0.2, test_fraction=0.1)[0] for s in splits.SPLITS}
    assert [len(parts[s]) for s in splits.SPLITS] == [70, 20, 10]
    ids = {s: _ids(parts[s]) for s in parts}
    assert not (ids["train"] & ids["validation"] or ids["train"] & ids["test"] or ids["validation"] & ids["test"])
    assert set().union(*ids.values()) == set(range(100))
    for s in splits.SPLITS:  # the same examples every time: a fixed, seeded permutation
        np.testing.assert_array_equal(splits.load_split(path, s, val_fraction=0.2, test_fraction=0.1)[0], parts[s])
    # the default fractions: 10% each, never fewer than one example
    assert [len(splits.load_split(path, s)[0]) for s in splits.SPLITS] == [80, 10, 10]
    small = _npz(tmp_path, "small.npz", n=5)
    assert [len(splits.load_split(small, s)[0]) for s in splits.SPLITS] == [3, 1, 1]
    x, info = splits.load_split(path, "validation")
    assert info.num_examples == len(x) == 10 and info.kind == "image"


def test_a_source_split_is_used_as_it_is(tmp_path):
    path = _npz(tmp_path, "with_test.npz", n=50,
                test=np.zeros((7, 4, 4, 1), np.uint8))
    assert len(splits.load_split(path, "test")[0]) == 7
    assert [len(splits.load_split(path, s)[0]) for s in ("train", "validation")] == [45, 5]


def test_too_few_examples_to_hold_out_raise(tmp_path):
    with pytest.raises(ValueError, match="too few"):
        splits.load_split(_npz(tmp_path, "tiny.npz", n=2), "train")


def test_fixed_splits_and_kinds_of_named_sources():
    x, info = splits.load_split("digits", "validation")
    assert len(x) == 144 and info.kind == "image" and splits.num_examples(x) == 144
    assert splits.data_kind("moons") == "vector" and splits.data_kind("digits28") == "image"
    assert splits.data_kind("some.npz") == "image"


def test_the_parser_s_held_out_fractions_are_the_library_s():
    # options.py repeats them: the parser must not import TensorFlow, and splits does
    assert (options.DEFAULT_VAL_FRACTION, options.DEFAULT_TEST_FRACTION) == (
        splits.DEFAULT_VAL_FRACTION, splits.DEFAULT_TEST_FRACTION)


# ------------------------------------------------------------------------ nsf and maf
def test_nsf_and_maf_defaults_and_their_model_options():
    assert recipes.recipe_for("vector", (2,), "nsf").flow_kwargs == {"couplings": 4, "hidden": [128, 128], "bins": 8}
    assert recipes.recipe_for("vector", (2,), "maf").flow_kwargs == {"layers": 5, "hidden": [128, 128]}
    r = recipes.recipe_for("image", (8, 8, 1), "nsf", "digits", steps=3, hidden=64, bins=5)
    assert r.flow_kwargs == {"couplings": 3, "hidden": [64, 64], "bins": 5} and r.n_bits == 5
    r = recipes.recipe_for("vector", (2,), "maf", steps=2, hidden=(16, 8), transform="spline", bins=4)
    assert r.flow_kwargs == {"layers": 2, "hidden": [16, 8], "transform": "spline", "bins": 4}


@pytest.mark.parametrize("flow,kwargs,option", [
    ("maf", dict(bins=4), "bins"),  # the affine MAF has no bins
    ("nsf", dict(transform="spline"), "transform"),
    ("nsf", dict(levels=2), "levels"),
    ("glow", dict(bins=4), "bins"),
    ("realnvp", dict(transform="affine"), "transform"),
])
def test_spline_options_only_where_they_apply(flow, kwargs, option):
    kind, shape = ("image", (8, 8, 1)) if flow == "glow" else ("vector", (2,))
    with pytest.raises(recipes.OptionError) as info:
        recipes.recipe_for(kind, shape, flow, **kwargs)
    assert info.value.option == option


@pytest.mark.parametrize("data,flow", [("moons", "nsf"), ("digits", "maf")])
def test_build_model_trains_nsf_and_maf(data, flow):
    model, r = recipes.build_model(data, flow, steps=2, hidden=16, warmup_steps=0)
    assert model.config_.flow == flow
    x, _ = splits.load_split(data, "train")
    history = model.fit(data_lib.make_dataset(x[:64], 32), epochs=2, verbose=0)
    loss = history.history["loss"]
    assert np.all(np.isfinite(loss)) and loss[-1] < loss[0]
