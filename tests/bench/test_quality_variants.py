"""`tfp-glow bench --quality --flow tarflow` (`tfp_glow.bench.quality_variants`): our TarFlow as a
variant of our side, with the CLI's recipe, next to our Glow and the peer in one run."""
import json
import math

import pytest

from tfp_glow import models, recipes
from tfp_glow.bench import quality_config, quality_options, quality_report, quality_sides, quality_variants


def _cfg(**kw):
    base = dict(data="digits28", budget=4.0, levels=2, steps=1, hidden=8, curve_every=5, which="ours")
    base.update(kw)
    return quality_config.resolve_config(**base)


def test_flow_tarflow_adds_a_tarflow_variant_named_after_its_flow_next_to_glow():
    cfg = _cfg(flow="tarflow", which="ours,normflows")
    assert cfg["variants"] == {"glow": {}, "tarflow": {"flow": "tarflow"}}
    assert quality_config.run_labels(cfg) == ["glow", "tarflow", "normflows"]
    # without --flow tarflow nothing changes
    assert _cfg()["variants"] == {"ours": {}}
    # a variant that already runs TarFlow is not doubled
    cfg = _cfg(flow="tarflow", variants=["mine:flow=tarflow,width=32"])
    assert list(cfg["variants"]) == ["mine"]


def test_the_tarflow_variant_takes_the_cli_recipe_and_the_variant_keys_change_it():
    r = recipes.recipe_for("image", (28, 28, 1), "tarflow", "digits28")
    s = quality_variants.ours_settings(_cfg(), {"flow": "tarflow"})
    assert s["flow"] == "tarflow" and s["flow_kwargs"] == dict(r.flow_kwargs)
    assert s["learning_rate"] == r.learning_rate
    assert s["compile"]["warmup_steps"] == r.warmup_steps and s["compile"]["clip_norm"] == r.clip_norm
    s = quality_variants.ours_settings(_cfg(), {"flow": "tarflow", "width": "32", "blocks": "2", "lr": "5e-4",
                                                "clip": "none"})
    assert s["flow_kwargs"]["width"] == 32 and s["flow_kwargs"]["blocks"] == 2
    assert s["flow_kwargs"]["patch_size"] == r.flow_kwargs["patch_size"]
    assert s["learning_rate"] == 5e-4 and s["compile"]["clip_norm"] is None
    # the Glow side is untouched: the bench's own architecture
    g = quality_variants.ours_settings(_cfg(), {})
    assert g["flow"] == "glow" and g["flow_kwargs"]["hidden_channels"] == 8


def test_flow_of_gives_the_flow_and_builder_arguments_the_variant_trains():
    cfg = _cfg(flow="tarflow", variants=["narrow:flow=tarflow,width=32", "smin0:scale_min=0"])
    for options in cfg["variants"].values():
        s = quality_variants.ours_settings(cfg, options)
        assert quality_variants.flow_of(cfg, options) == (s["flow"], s["flow_kwargs"])
    assert quality_config.tarflow_kwargs(cfg) == {"narrow": quality_variants.flow_of(cfg, {"flow": "tarflow",
                                                                                          "width": "32"})[1]}
    with pytest.raises(ValueError, match="width is not an option of flow=glow"):
        quality_variants.flow_of(cfg, {"width": "32"})


@pytest.mark.parametrize("options, pattern", [
    ({"flow": "maf"}, r"flow must be glow or tarflow; received 'maf'"),
    ({"flow": "tarflow", "scale_min": "0"}, r"scale_min is not an option of flow=tarflow"),
    ({"width": "32"}, r"width is not an option of flow=glow \(add flow=tarflow\)"),
    ({"flow": "tarflow", "blocks": "0"}, r"blocks must be an integer >= 1; received '0'"),
])
def test_bad_variant_keys_are_refused_by_the_parent_before_any_child_runs(options, pattern):
    spec = "v:" + ",".join(f"{k}={v}" for k, v in options.items())
    with pytest.raises(ValueError, match=r"variant 'v': .*" + pattern):
        _cfg(variants=[spec])


def test_bad_flow_option_is_a_clear_error():
    with pytest.raises(ValueError, match=r"--flow must be glow or tarflow; received 'nice'"):
        _cfg(flow="nice")
    with pytest.raises(SystemExit):
        quality_options.build_parser().parse_args(["--flow", "nice"])


def test_report_names_both_architectures():
    cfg = _cfg(flow="tarflow", variants=["glow:", "t:flow=tarflow,width=32,blocks=2,layers_per_block=1"])
    text = quality_report.describe(cfg)
    assert "Glow L=2 K=1 hidden 8" in text and "TarFlow p=4 w=32 2x1 (t)" in text
    assert quality_report.architectures(cfg) == "Glow L=2 K=1 h=8, TarFlow p=4 w=32 2x1"


def test_the_child_trains_a_tiny_tarflow_and_measures_it_like_glow():
    cfg = _cfg(variants=["t:flow=tarflow,width=16,blocks=2,layers_per_block=1"], budget=3.0)
    r = quality_sides.run_child("ours", cfg, "t")
    assert r["status"] == "ok" and r["variant"] == "t"
    assert r["steps"] > 0 and math.isfinite(r["test_bpd"]) and 0 < r["test_bpd"] < 12
    assert r["weights_finite"] and r["finite_samples"] == {"1.0": 1.0, "0.7": 1.0}
    assert r["optimizer"].startswith("tarflow patch_size=4 width=16 blocks=2 layers_per_block=1")
    # the parameter count is TarFlow's: an independently built model of the same arguments
    expected = models.count_parameters(models.tarflow((28, 28, 1), patch_size=4, width=16, blocks=2,
                                                      layers_per_block=1))
    assert r["params"] == expected
    json.dumps(r)


def test_beta2_and_adamw_reach_the_optimizer():
    import keras
    s = quality_variants.ours_settings(_cfg(), {"flow": "tarflow", "optimizer": "adamw", "beta2": "0.95"})
    opt = s["optimizer"]
    assert isinstance(opt, keras.optimizers.AdamW)
    assert opt.beta_2 == 0.95 and opt.weight_decay == pytest.approx(1e-4)
    assert quality_variants.ours_settings(_cfg(), {})["optimizer"].beta_2 == 0.999  # Keras' default
    with pytest.raises(ValueError, match=r"beta2 must be a float in \(0, 1\); received '1'"):
        quality_variants.ours_settings(_cfg(), {"beta2": "1"})


def test_a_tarflow_only_bench_does_not_name_a_glow_it_does_not_run():
    cfg = _cfg(variants=["t:flow=tarflow"])
    assert quality_report.architectures(cfg) == "TarFlow p=4 w=128 4x4"
    assert quality_report.architectures(_cfg(variants=["t:flow=tarflow"], which="ours,normflows")).startswith("Glow")
