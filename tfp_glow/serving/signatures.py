"""The one builder of the serving signatures, for a model with or without a context (labels).

`serving_functions(model)` traces, once per model, the `tf.function`s that the SavedModel
serves (tfp_glow.serving lists them); a class-conditional model's take a `label` input where
they need one. Latents come from the shared sampler (`tfp_glow.models.sampling`), so the SavedModel,
`sample_stateless` and `FlowModel.sample` draw the same latent for the same seed.
"""
import weakref

import tensorflow as tf

from tfp_glow.bijectors.conditioning import takes_guidance
from tfp_glow.numerics import averaging
from tfp_glow.models import sampling
from tfp_glow.serving import checks
from tfp_glow.serving.graph import ServingGraph

__all__ = ["CONDITIONAL_SIGNATURES", "IMAGE_SIGNATURES", "VECTOR_SIGNATURES", "sample_stateless",
           "serving_functions", "signature_names"]

IMAGE_SIGNATURES = ("log_prob", "log_prob_float", "log_prob_image", "sample", "sample_n", "encode",
                    "encode_image", "decode")
VECTOR_SIGNATURES = ("log_prob", "sample", "sample_n", "encode", "decode")
#: Signatures of a class-conditional image model (`ConditionalFlowModel`).
CONDITIONAL_SIGNATURES = ("log_prob", "classify", "sample", "encode", "decode")

_CACHE = weakref.WeakKeyDictionary()  # model -> dict of tf.functions


def _is_conditional(model):
    return int(getattr(model, "num_classes", 0) or 0) > 0


def _takes_guidance(model):
    return _is_conditional(model) and takes_guidance(model.distribution.bijector)


def signature_names(model):
    """Names of the serving signatures a SavedModel of `model` holds by default."""
    if _is_conditional(model):
        return CONDITIONAL_SIGNATURES + (("sample_guided",) if _takes_guidance(model) else ())
    return IMAGE_SIGNATURES if model.is_image else VECTOR_SIGNATURES


def serving_functions(model):
    """The `tf.function`s behind the serving signatures, traced once per model (cached).

    The export saves exactly these functions and `sample_stateless` calls them on the live
    model, so both run the same graph.

    Args:
      model: a `FlowModel` or a class-conditional one, its actnorm layers initialised.

    Returns:
      dict name -> `tf.function` with an `input_signature`, for every name in
      `signature_names(model)`, plus `"_sample"`: `(n, temperature, seed [2])`, with a leading
      `label [n]` for a conditional model.
    """
    if model not in _CACHE:
        g = ServingGraph(model)
        fns = {**_scoring(g), **_sampling(g), **_latent(g)}
        if g.is_image and not g.conditional:
            fns.update(_image_bytes(g))
        if g.conditional:
            fns["classify"] = _classify(g)
        if _takes_guidance(model):
            fns["sample_guided"] = _guided_sample(g)
        _CACHE[model] = fns
    return _CACHE[model]


def _scoring(g):
    """`log_prob` (uint8 images or float vectors), and `log_prob_float` of an unconditional image model."""
    fns = {}
    if g.conditional:
        @tf.function(input_signature=[g.x_spec(), g.label_spec()], autograph=False)
        def log_prob(x, label):
            x = checks.check_shape(x, "log_prob", "x", g.event_shape, g.x_note)
            label = checks.check_labels(label, g.num_classes, "log_prob", tf.shape(x)[0])
            return g.scores(*g.dequantize(x), label=label)
    else:
        @tf.function(input_signature=[g.x_spec()], autograph=False)
        def log_prob(x):
            x = checks.check_shape(x, "log_prob", "x", g.event_shape, g.x_note)
            return g.scores(*g.dequantize(x))
    fns["log_prob"] = log_prob
    if g.is_image and not g.conditional:
        @tf.function(input_signature=[g.x_spec(tf.float32)], autograph=False)
        def log_prob_float(x):
            x = checks.check_shape(x, "log_prob_float", "x", g.event_shape, " (dequantized, in [-0.5, 0.5))")
            return g.scores(x)
        fns["log_prob_float"] = log_prob_float
    return fns


def _latent(g):
    """`encode` (data -> latent, with the fixed noise) and `decode` (latent -> data)."""
    def encoded(x, label):
        x = checks.check_shape(x, "encode", "x", g.event_shape, g.x_note)
        if label is not None:
            label = checks.check_labels(label, g.num_classes, "encode", tf.shape(x)[0])
        return {"z": g.inverse(g.dequantize(x)[0], label)}

    def decoded(z, label):
        z = checks.check_shape(z, "decode", "z", g.latent_shape, " (latent)")
        if label is not None:
            label = checks.check_labels(label, g.num_classes, "decode", tf.shape(z)[0])
        return g.forward(z, label)

    if g.conditional:
        @tf.function(input_signature=[g.x_spec(), g.label_spec()], autograph=False)
        def encode(x, label):
            return encoded(x, label)

        @tf.function(input_signature=[g.z_spec(), g.label_spec()], autograph=False)
        def decode(z, label):
            return decoded(z, label)
    else:
        @tf.function(input_signature=[g.x_spec()], autograph=False)
        def encode(x):
            return encoded(x, None)

        @tf.function(input_signature=[g.z_spec()], autograph=False)
        def decode(z):
            return decoded(z, None)
    return {"encode": encode, "decode": decode}


def _sampling(g):
    """`sample` (one latent per row), `sample_n` (unconditional) and `_sample` (seed `[2]`)."""
    fns = {}
    n_spec, t_spec = tf.TensorSpec([], tf.int32, name="n"), tf.TensorSpec([], tf.float32, name="temperature")

    def draw(n, temperature, seed):
        check = tf.debugging.Assert(n >= 0, ["tfp_glow SavedModel, signature sample: expects n >= 0; received", n])
        with tf.control_dependencies([check]):
            temperature = checks.check_temperature(temperature, "sample")
            return sampling.draw_latent(g.latent_shape, n, temperature, seed)

    if g.conditional:
        @tf.function(input_signature=[g.label_spec(), t_spec, tf.TensorSpec([2], tf.int32, name="seed")],
                     autograph=False)
        def _sample(label, temperature, seed):
            label = checks.check_labels(label, g.num_classes, "sample")
            return g.generate(draw(tf.size(label), temperature, seed), label)
        fns["_sample"] = _sample
        fns["sample"] = _conditional_sample(g)
        return fns

    @tf.function(input_signature=[n_spec, t_spec, tf.TensorSpec([2], tf.int32, name="seed")], autograph=False)
    def _sample(n, temperature, seed):
        return g.generate(draw(n, temperature, seed))
    fns["_sample"] = _sample

    @tf.function(input_signature=[n_spec, t_spec, tf.TensorSpec([], tf.int32, name="seed")], autograph=False)
    def sample_n(n, temperature, seed):
        return _sample(n, temperature, sampling.stateless_seed(seed))
    fns["sample_n"] = sample_n

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="temperature"),
                                  tf.TensorSpec([None], tf.int32, name="seed")], autograph=False)
    def sample(temperature, seed):
        # row i decodes T_i * stateless_normal(latent_shape, [seed_i, 0]) = sample_n(1, T_i, seed_i)
        temperature, seed = checks.check_rows("sample", tf.size(temperature), temperature=temperature, seed=seed)
        temperature = checks.check_temperature(temperature, "sample")
        return g.generate(sampling.draw_rows(g.latent_shape, temperature, seed))
    fns["sample"] = sample
    return fns


def _conditional_sample(g):
    """A conditional model's `sample`: `label [N]` with `temperature` and `seed` `[N]` (rows, as the
    unconditional `sample`) or `[]` (format 1's call: one draw of `N` rows with seed `[seed, 0]`)."""
    any_rank = dict(autograph=False, input_signature=[
        g.label_spec(), tf.TensorSpec(None, tf.float32, name="temperature"), tf.TensorSpec(None, tf.int32, name="seed")])

    @tf.function(**any_rank)
    def sample(label, temperature, seed):
        n = tf.size(label)
        label = checks.check_labels(label, g.num_classes, "sample")
        shape_checks = [tf.debugging.Assert(
            tf.logical_or(tf.equal(tf.rank(v), 0), tf.logical_and(tf.equal(tf.rank(v), 1), tf.equal(tf.size(v), n))),
            [f"tfp_glow SavedModel, signature sample: expects {k}: [batch] (one per label) or [] (one for all); "
             "received shape", tf.shape(v), "for", n, "labels"]) for k, v in (("temperature", temperature),
                                                                              ("seed", seed))]
        with tf.control_dependencies(shape_checks):
            t_rows = checks.check_temperature(temperature, "sample") * tf.ones([n], tf.float32)
        z = tf.cond(tf.equal(tf.rank(seed), 0),
                    lambda: sampling.draw_latent(g.latent_shape, n, 1.0, tf.reshape(seed, [])),
                    lambda: sampling.draw_rows(g.latent_shape, tf.ones([n], tf.float32), tf.reshape(seed, [-1])))
        z = z * tf.reshape(t_rows, [-1] + [1] * len(g.latent_shape))
        return g.generate(z, label)
    return sample


def _guided_sample(g):
    """`sample_guided`: the rows of `sample` (`label`, `temperature`, `seed` `[N]`) with a scalar
    classifier-free `guidance >= 0` (class-conditional flows whose blocks take it: TarFlow)."""
    @tf.function(autograph=False, input_signature=[
        g.label_spec(), tf.TensorSpec([None], tf.float32, name="temperature"),
        tf.TensorSpec([None], tf.int32, name="seed"), tf.TensorSpec([], tf.float32, name="guidance")])
    def sample_guided(label, temperature, seed, guidance):
        label = checks.check_labels(label, g.num_classes, "sample_guided")
        temperature, seed = checks.check_rows("sample_guided", tf.size(label), temperature=temperature, seed=seed)
        temperature = checks.check_temperature(temperature, "sample_guided")
        ok = tf.debugging.Assert(tf.logical_and(tf.math.is_finite(guidance), guidance >= 0),
                                 ["tfp_glow SavedModel, signature sample_guided: expects guidance >= 0; received",
                                  guidance])
        with tf.control_dependencies([ok]):
            guidance = tf.identity(guidance)
        return g.generate(sampling.draw_rows(g.latent_shape, temperature, seed), label, guidance)
    return sample_guided


def _image_bytes(g):
    """`log_prob_image` and `encode_image`: encoded PNG/JPEG/GIF/BMP images of the model's size."""
    bytes_spec = tf.TensorSpec([None], tf.string, name="image_bytes")

    @tf.function(input_signature=[bytes_spec], autograph=False)
    def log_prob_image(image_bytes):
        return g.scores(*g.dequantize(checks.decode_images(image_bytes, "log_prob_image", g.event_shape)))

    @tf.function(input_signature=[bytes_spec], autograph=False)
    def encode_image(image_bytes):
        images = checks.decode_images(image_bytes, "encode_image", g.event_shape)
        return {"z": g.inverse(g.dequantize(images)[0])}
    return {"log_prob_image": log_prob_image, "encode_image": encode_image}


def _classify(g):
    """A conditional model's `classify`: Bayes-rule labels and posteriors of uint8 images."""
    @tf.function(input_signature=[g.x_spec()], autograph=False)
    def classify(x):
        x = checks.check_shape(x, "classify", "x", g.event_shape, g.x_note)
        return g.classify(g.dequantize(x)[0])
    return classify


def sample_stateless(model, n, temperature=1.0, seed=0, labels=None):
    """Deterministic samples from the live model, the same as the SavedModel's `sample_n`.

    Decodes `z = temperature * stateless_normal([n, *latent_shape], seed=[seed, 0])`
    (`sampling.draw_latent`, which `FlowModel.sample` draws too), running the very graph that
    the export saves, with the averaged weights if the model keeps an average.

    Args:
      model: a `FlowModel`; a conditional one needs `labels`.
      n: number of samples (int >= 0).
      temperature: standard deviation of the base distribution (float >= 0).
      seed: an int (used as `[seed, 0]`) or a stateless pair `[2]`.
      labels: int `[n]`, the classes of a conditional model's samples; `None` otherwise.

    Returns:
      dict: `x` float32 `[n, *event_shape]` (data space) and, for image models, `images`
      uint8 `[n, H, W, C]`.
    """
    fns = serving_functions(model)
    t, s = tf.constant(float(temperature), tf.float32), sampling.stateless_seed(seed)
    with averaging.averaged_weights(model):  # as `FlowModel.sample`
        if _is_conditional(model):
            y = model.check_labels(labels, int(n))
            return fns["_sample"](tf.constant(y, tf.int32), t, s)
        if labels is not None:
            raise ValueError("labels apply only to a class-conditional model; this model is unconditional.")
        return fns["_sample"](tf.constant(int(n), tf.int32), t, s)
