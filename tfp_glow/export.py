"""Export a trained `FlowModel` as a SavedModel with serving signatures.

The SavedModel holds a plain `tf.Module`: the flow's variables (every Keras weight of the
model, actnorm state included) and graph functions built from core TensorFlow ops only.
Loading it needs TensorFlow alone (`tf.saved_model.load`, `saved_model_cli`, TF Serving):
neither `tfp_glow` nor TensorFlow Probability is imported, and Keras is not used.

Signatures (every batch dimension is dynamic; `H, W, C` is the model's event shape, `D` its
size for vector models, `L...` the latent shape):

| signature | inputs | outputs |
|---|---|---|
| `log_prob` (also `serving_default`) | `x`: uint8 `[N, H, W, C]` 8-bit levels, or float32 `[N, D]` | `log_prob`, `nll`, `bits_per_dim`: float32 `[N]` |
| `log_prob_float` (images) | `x`: float32 `[N, H, W, C]`, dequantized, in `[-0.5, 0.5)` | as `log_prob` |
| `log_prob_image` (images) | `image_bytes`: string `[N]`, encoded PNG/JPEG/GIF/BMP of `H x W` pixels | as `log_prob` |
| `sample` | `temperature`: float32 `[N]`, `seed`: int32 `[N]`: one sample per row | `images`: uint8 `[N, H, W, C]` and `x`: float32 `[N, H, W, C]` (images), or `x`: float32 `[N, D]` |
| `sample_n` | `n`: int32 `[]`, `temperature`: float32 `[]`, `seed`: int32 `[]` | as `sample`, `n` rows |
| `encode` | `x` as for `log_prob` | `z`: float32 `[N, L...]` |
| `encode_image` (images) | `image_bytes` as for `log_prob_image` | `z`: float32 `[N, L...]` |
| `decode` | `z`: float32 `[N, L...]` | `x`: float32 (data space, `[-0.5, 0.5)` for images) and, for images, `images`: uint8 |

Every signature but `sample_n` takes a batch on axis 0 of every input, so TF Serving's REST
row format (`{"instances": [...]}`, one object per example) and its server-side batching can
call it; `*_image` inputs are named `image_bytes` so that REST clients send them as
`{"b64": "<base64 PNG>"}`. Row `i` of `sample` is `sample_n(1, temperature[i], seed[i])`.
`export_saved_model(..., version=N)` (`tfp-glow export --version N`) writes TF Serving's
layout `PATH/N/`.

A model trained under a mixed-precision policy (bf16 or float16 conditioner networks) is
exported as its float32 twin (`precision.float32_twin`: the same weights in a float32 model), so
the SavedModel serves float32 figures and runs in float32 everywhere.

A model that keeps an average of its weights (`FlowModel.compile(ema_decay=...)`) is exported
with the averages as its weights (`averaging.averaged_weights`), as `evaluate` and `sample` use
them.

Image signatures reduce 8-bit input to the model's `n_bits` and dequantize it with the fixed
noise pattern of the model's evaluation (`FlowModel.eval_noise`, as
`FlowModel.predict_step`/`test_step`/`call`), so they give the live model's numbers. A model
with variational dequantization pushes that noise through its learned `q(u | x)`: `nll` and
`bits_per_dim` of `log_prob` and `log_prob_image` are then the variational bound
`-log p(x + u) + D n log 2 + log q(u | x)` with that one `u`, and `log_prob` is the flow's
`log p(x + u)`, as `evaluate` and `predict` report them; `encode` maps that `x + u`.
`log_prob_float` scores the continuous input it is given, without `q`.
`sample_n` draws the latent with `tf.random.stateless_normal(seed=[seed, 0])` times
`temperature`: the same seed gives the same images, here, in `sample_stateless` and in
`FlowModel.sample` on the live model.

A wrong input shape fails with an `InvalidArgumentError` naming the signature and its
expected input (`signature log_prob: expects x: uint8 [batch, 8, 8, 1] ...`). A wrong dtype
is refused by TensorFlow before the graph runs (through `loaded.signatures[...]`: "was
expected to be a uint8 tensor"; through the restored functions `loaded.log_prob(...)`: "Can
not cast TensorSpec(...) to TensorSpec(shape=(None, 8, 8, 1), dtype=tf.uint8, name='x')").
"""
import json
import os
import weakref

import tensorflow as tf

from tfp_glow import averaging, precision
from tfp_glow import data as data_lib

__all__ = ["export_saved_model", "serving_functions", "sample_stateless", "signature_names", "versioned_path",
           "CONDITIONAL_SIGNATURES", "conditional_serving_functions", "export_conditional_saved_model"]

_IMAGE_SIGNATURES = ("log_prob", "log_prob_float", "log_prob_image", "sample", "sample_n", "encode",
                     "encode_image", "decode")
_VECTOR_SIGNATURES = ("log_prob", "sample", "sample_n", "encode", "decode")

_CACHE = weakref.WeakKeyDictionary()  # model -> dict of tf.functions


def signature_names(model):
    """Names of the serving signatures `export_saved_model` writes for `model` by default."""
    return _IMAGE_SIGNATURES if model.is_image else _VECTOR_SIGNATURES


def _spec_text(dtype, shape):
    return f"{tf.as_dtype(dtype).name} [{', '.join(['batch'] + [str(d) for d in shape])}]"


def _check_input(t, signature, arg, event_shape, note=""):
    """`t` after a run-time check that its shape is `[batch, *event_shape]`.

    The signature wrappers of a loaded SavedModel do not check shapes (only dtypes), and a
    wrong shape would otherwise fail deep inside the flow with an unrelated message, or, for
    some shapes, not fail at all.
    """
    rank = len(event_shape) + 1
    shape = tf.shape(t)
    padded = tf.concat([shape, tf.fill([rank], -1)], axis=0)[1:rank]
    ok = tf.logical_and(tf.equal(tf.size(shape), rank),
                        tf.reduce_all(tf.equal(padded, tf.constant(event_shape, tf.int32))))
    # (no quotes: the Assert op escapes them in its message)
    msg = (f"tfp_glow SavedModel, signature {signature}: expects {arg}: "
           f"{_spec_text(t.dtype, event_shape)}{note}; received a tensor of shape")
    check = tf.debugging.Assert(ok, [msg, shape], summarize=16, name=f"check_{arg}_shape")
    with tf.control_dependencies([check]):
        return tf.identity(t)


def _stateless_seed(seed):
    """A stateless seed `[2]` from an int (`[seed, 0]`) or a pair."""
    seed = tf.convert_to_tensor(seed)
    if not seed.dtype.is_integer:
        raise ValueError(f"seed must be an integer or a pair of integers; received dtype {seed.dtype.name}.")
    seed = tf.cast(seed, tf.int32)
    if seed.shape.rank == 0:
        return tf.stack([seed, tf.zeros([], tf.int32)])
    if seed.shape.as_list() != [2]:
        raise ValueError(f"seed must be an int or a pair [2] of ints; received shape {seed.shape.as_list()}.")
    return seed


def serving_functions(model):
    """The `tf.function`s behind the serving signatures, traced once per model (cached).

    `export_saved_model` saves exactly these functions, and `sample_stateless` calls them on
    the live model, so both run the same graph.

    Args:
      model: a `FlowModel` (its actnorm layers initialised).

    Returns:
      dict name -> `tf.function` with an `input_signature`, for every name in
      `signature_names(model)`, plus `"_sample"` (the sampler taking a stateless seed `[2]`).
    """
    if model not in _CACHE:
        _CACHE[model] = _build_functions(model)
    return _CACHE[model]


def _build_functions(model):
    # The functions close over a weak reference, so the cache does not keep the model alive;
    # they are traced (once per tracing context) only through the model, which is then alive.
    ref = weakref.ref(model)
    event_shape = tuple(int(d) for d in model.event_shape)
    latent_shape = tuple(int(d) for d in model.latent_shape)
    is_image, n_bits = model.is_image, model.n_bits
    x_dtype = tf.uint8 if is_image else tf.float32
    x_note = " (8-bit pixel levels 0..255)" if is_image else ""

    def dequantize(x):
        # the live model's evaluation path: its one fixed noise pattern (through q(u | x) when
        # variational), in any kernel; `log q` is None for uniform dequantization
        return ref().dequantize(x, fixed_noise=True)

    def preprocess(x):
        return dequantize(x)[0]

    def scores(x_pre, log_q=None):
        def full():
            log_p, nll, bpd = ref().log_prob_and_bpd(x_pre, log_q)
            return {"log_prob": log_p, "nll": nll, "bits_per_dim": bpd}
        empty = tf.zeros([0], tf.float32)
        return _unless_empty(x_pre, full, {"log_prob": empty, "nll": empty, "bits_per_dim": empty})

    def forward(z):
        return _unless_empty(z, lambda: tf.cast(ref().distribution.bijector.forward(z), tf.float32),
                             tf.zeros([0, *event_shape], tf.float32))

    def inverse(x_pre):
        return _unless_empty(x_pre, lambda: tf.cast(ref().distribution.bijector.inverse(x_pre), tf.float32),
                             tf.zeros([0, *latent_shape], tf.float32))

    def data_outputs(x):
        out = {"x": tf.cast(x, tf.float32)}
        if is_image:
            out["images"] = data_lib.to_uint8(x, n_bits)
        return out

    x_spec = tf.TensorSpec([None, *event_shape], x_dtype, name="x")
    z_spec = tf.TensorSpec([None, *latent_shape], tf.float32, name="z")
    fns = {}

    @tf.function(input_signature=[x_spec], autograph=False)
    def log_prob(x):
        x = _check_input(x, "log_prob", "x", event_shape, x_note)
        return scores(*dequantize(x))
    fns["log_prob"] = log_prob

    if is_image:
        @tf.function(input_signature=[tf.TensorSpec([None, *event_shape], tf.float32, name="x")],
                     autograph=False)
        def log_prob_float(x):
            x = _check_input(x, "log_prob_float", "x", event_shape, " (dequantized, in [-0.5, 0.5))")
            return scores(x)
        fns["log_prob_float"] = log_prob_float

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="n"),
                                  tf.TensorSpec([], tf.float32, name="temperature"),
                                  tf.TensorSpec([2], tf.int32, name="seed")], autograph=False)
    def _sample(n, temperature, seed):
        checks = [
            tf.debugging.Assert(n >= 0, ["tfp_glow SavedModel, signature sample: expects n >= 0; received", n]),
            tf.debugging.Assert(temperature >= 0.0, [
                "tfp_glow SavedModel, signature sample: expects temperature >= 0; received", temperature]),
        ]
        with tf.control_dependencies(checks):
            shape = tf.concat([tf.reshape(n, [1]), tf.constant(latent_shape, tf.int32)], axis=0)
            z = tf.random.stateless_normal(shape, seed=seed, dtype=tf.float32) * temperature
        z.set_shape([None, *latent_shape])
        return data_outputs(forward(z))
    fns["_sample"] = _sample

    @tf.function(input_signature=[tf.TensorSpec([], tf.int32, name="n"),
                                  tf.TensorSpec([], tf.float32, name="temperature"),
                                  tf.TensorSpec([], tf.int32, name="seed")], autograph=False)
    def sample_n(n, temperature, seed):
        return _sample(n, temperature, tf.stack([seed, tf.zeros([], tf.int32)]))
    fns["sample_n"] = sample_n

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="temperature"),
                                  tf.TensorSpec([None], tf.int32, name="seed")], autograph=False)
    def sample(temperature, seed):
        # One sample per row, so TF Serving's row format and its request batching can call it:
        # row i decodes temperature[i] * stateless_normal(latent_shape, seed=[seed[i], 0]),
        # which is sample_n(1, temperature[i], seed[i]).
        checks = [
            tf.debugging.Assert(tf.equal(tf.size(temperature), tf.size(seed)), [
                "tfp_glow SavedModel, signature sample: expects temperature [batch] and seed [batch] of one "
                "length; received lengths", tf.size(temperature), tf.size(seed)]),
            tf.debugging.Assert(tf.reduce_all(temperature >= 0.0), [
                "tfp_glow SavedModel, signature sample: expects temperature >= 0; received", temperature]),
        ]
        with tf.control_dependencies(checks):
            eps = tf.map_fn(
                lambda s: tf.random.stateless_normal(latent_shape, seed=tf.stack([s, tf.zeros([], tf.int32)])),
                seed, fn_output_signature=tf.TensorSpec(latent_shape, tf.float32))
        z = eps * tf.reshape(temperature, [-1] + [1] * len(latent_shape))
        return data_outputs(forward(z))  # no rows: empty outputs
    fns["sample"] = sample

    @tf.function(input_signature=[x_spec], autograph=False)
    def encode(x):
        x = _check_input(x, "encode", "x", event_shape, x_note)
        return {"z": inverse(preprocess(x))}
    fns["encode"] = encode

    if is_image:
        bytes_spec = tf.TensorSpec([None], tf.string, name="image_bytes")

        def decode_images(image_bytes, signature):
            # TF Serving's REST API base64-decodes inputs named *_bytes ({"b64": ...}); every
            # image must have the model's H x W (channels are converted, e.g. RGB -> grey).
            h, w, c = event_shape
            msg = (f"tfp_glow SavedModel, signature {signature}: expects image_bytes: encoded PNG/JPEG/GIF/BMP "
                   f"images of {h}x{w} pixels; received an image of shape")

            def one(b):
                image = tf.io.decode_image(b, channels=c, dtype=tf.uint8, expand_animations=False)
                shape = tf.shape(image)
                ok = tf.reduce_all(tf.equal(shape[:2], tf.constant([h, w], tf.int32)))
                # a wrong size decodes to zeros here and fails the assertion below; no other op
                # can fail first with a message that does not say what was expected
                fixed = tf.cond(ok, lambda: tf.reshape(image, [h, w, c]), lambda: tf.zeros([h, w, c], tf.uint8))
                return fixed, shape

            images, shapes = tf.map_fn(one, image_bytes, fn_output_signature=(
                tf.TensorSpec([h, w, c], tf.uint8), tf.TensorSpec([3], tf.int32)))
            ok = tf.reduce_all(tf.equal(shapes[:, :2], tf.constant([[h, w]], tf.int32)), axis=1)
            first_bad = tf.gather(shapes, tf.argmin(tf.cast(ok, tf.int32)))
            check = tf.debugging.Assert(tf.reduce_all(ok), [msg, first_bad], summarize=8)
            with tf.control_dependencies([check]):
                return tf.identity(images)

        @tf.function(input_signature=[bytes_spec], autograph=False)
        def log_prob_image(image_bytes):
            return scores(*dequantize(decode_images(image_bytes, "log_prob_image")))
        fns["log_prob_image"] = log_prob_image

        @tf.function(input_signature=[bytes_spec], autograph=False)
        def encode_image(image_bytes):
            return {"z": ref().distribution.bijector.inverse(preprocess(decode_images(image_bytes, "encode_image")))}
        fns["encode_image"] = encode_image

    @tf.function(input_signature=[z_spec], autograph=False)
    def decode(z):
        z = _check_input(z, "decode", "z", latent_shape, " (latent)")
        return data_outputs(forward(z))
    fns["decode"] = decode

    return fns


def _unless_empty(x, fn, empty):
    """`fn()`, or `empty` when the batch `x` is empty: convolutions reject a batch of 0
    ("input depth must be evenly divisible by filter depth"), so `n = 0` and empty inputs give
    empty results instead."""
    return tf.cond(tf.shape(x)[0] > 0, fn, lambda: empty)


def sample_stateless(model, n, temperature=1.0, seed=0):
    """Deterministic samples from the live model, the same as the SavedModel's `sample_n`.

    Draws `z = temperature * stateless_normal([n, *latent_shape], seed=[seed, 0])` and decodes
    it, running the very graph that `export_saved_model` saves (`FlowModel.sample` draws the
    same latent).

    Args:
      model: a `FlowModel`.
      n: number of samples (int >= 0).
      temperature: standard deviation of the base distribution.
      seed: an int (the signature's `seed`, used as `[seed, 0]`) or a stateless pair `[2]`.

    Returns:
      dict: `x` float32 `[n, *event_shape]` (data space) and, for image models, `images`
      uint8 `[n, H, W, C]`.
    """
    fns = serving_functions(model)
    with averaging.averaged_weights(model):  # as `FlowModel.sample`
        return fns["_sample"](tf.constant(int(n), tf.int32), tf.constant(float(temperature), tf.float32),
                              _stateless_seed(seed))


class _FlowServing(tf.Module):
    """What the SavedModel holds: the flow's variables, its metadata and the functions."""

    def __init__(self, model, fns, names, info):
        super().__init__(name="tfp_glow_serving")
        self.flow_variables = _served_variables(model)
        self.config_json = tf.Variable(json.dumps(info, sort_keys=True), trainable=False,
                                       name="config_json")
        for name in names:
            setattr(self, name, fns[name])


def _served_variables(model):
    """The variables a SavedModel holds: the distribution's, and `q(u | x)`'s when variational."""
    deq = getattr(model, "dequantizer", None)
    # a Keras layer: its KerasVariables wrap the tf.Variables that get saved
    return list(model.distribution.variables) + ([getattr(v, "value", v) for v in deq.variables]
                                                 if deq is not None else [])


def _check_variables(model, *more):
    """Every Keras weight of the model must be a served variable (so it is saved)."""
    served = {id(v) for v in _served_variables(model)} | {id(v) for v in more}
    # the weight average is saved as the values of the flow's variables (the exports swap it in)
    served |= {id(getattr(v, "value", v)) for v in averaging.average_variables(model)}
    missing = [w.path for w in model.weights if id(getattr(w, "value", w)) not in served]
    if missing:
        raise ValueError(
            f"Cannot export: {len(missing)} weights of the model are not variables of its distribution "
            f"(or its dequantizer), so the SavedModel would not hold them: {missing[:10]}.")


def versioned_path(path, version):
    """`path/<version>`, TF Serving's layout (`--model_base_path=path` serves the highest).

    Args:
      path: the model's base directory.
      version: an int >= 1, or `"next"`: one more than the highest numbered version already
        in `path` (1 in an empty or new directory).

    Raises:
      ValueError: a bad version.
    """
    path = os.fspath(path)
    if version == "next":
        existing = [int(d) for d in os.listdir(path) if d.isdigit()] if os.path.isdir(path) else []
        return os.path.join(path, str(max(existing, default=0) + 1))
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be an int >= 1 or 'next' (TF Serving's numbered version "
                         f"directories); received {version!r}.")
    return os.path.join(path, str(version))


def export_saved_model(model, path, signatures=None, serving_default="log_prob", version=None):
    """Write `model` as a SavedModel with named serving signatures.

    See the module docstring for the signatures. The model must be initialised (trained, or
    `model.initialize(batch)` run); exporting an uninitialised actnorm would serve
    meaningless numbers.

    Args:
      model: a `FlowModel`.
      path: directory to write (created; an existing SavedModel there is overwritten).
      signatures: names to export, a subset of `signature_names(model)`; default all.
      serving_default: signature also exported as `serving_default` (what TF Serving calls
        when a request names none), or `None`.
      version: `None` writes the SavedModel into `path`; an int (or `"next"`) writes it into
        `path/<version>/`, the layout TF Serving loads (`--model_base_path=path`). An existing
        version is never overwritten.

    Returns:
      The directory written, as a string.

    Raises:
      ValueError: unknown signature names, an uninitialised model, weights the distribution
        (and dequantizer) do not hold, or a bad `version`.
      FileExistsError: `path/<version>` exists.
    """
    available = signature_names(model)
    names = tuple(available if signatures is None else
                  ([signatures] if isinstance(signatures, str) else signatures))
    unknown = [s for s in names if s not in available]
    if unknown or not names:
        raise ValueError(f"Unknown signatures {unknown or names}; this "
                         f"{'image' if model.is_image else 'vector'} model exports {list(available)}.")
    if serving_default is not None and serving_default not in names:
        raise ValueError(f"serving_default={serving_default!r} is not among the exported signatures {list(names)}.")
    if not model.is_initialized:
        raise ValueError("Cannot export an uninitialised model: run model.initialize(batch) or fit it first "
                         "(its actnorm layers still hold their zero initial values).")
    model = precision.float32_twin(model)  # a mixed-precision model serves a float32 model's figures
    _check_variables(model)
    path = _target(path, version)
    fns = serving_functions(model)
    info = _info(model, names, serving_default)
    with averaging.averaged_weights(model):  # the SavedModel holds the averages as the flow's weights
        return _save(_FlowServing(model, fns, names, info), fns, names, info, path, serving_default)


def _target(path, version):
    """The directory to write: `path`, or `path/<version>` (which must not exist yet)."""
    if version is None:
        return os.fspath(path)
    path = versioned_path(path, version)
    if os.path.exists(path):
        raise FileExistsError(f"{path!r} already exists: TF Serving versions are never overwritten; export "
                              f"a higher version (or version='next').")
    return path


def _info(model, names, serving_default, **more):
    """The metadata a SavedModel carries (`config_json` and `assets.extra/tfp_glow.json`)."""
    return {
        "format": "tfp_glow.saved_model/1",
        "config": model.config_.to_dict(),
        "n_bits": model.n_bits,
        "eval_seed": int(model.eval_seed),
        "event_shape": [int(d) for d in model.event_shape],
        "latent_shape": [int(d) for d in model.latent_shape],
        "num_dims": int(model.num_dims),
        **more,
        "signatures": list(names) + (["serving_default"] if serving_default else []),
    }


def _save(module, fns, names, info, path, serving_default):
    """`tf.saved_model.save` of `module` with the named signatures, then its metadata file."""
    # Functions, not concrete functions: `tf.saved_model.save` traces them in its own context
    # anyway, so tracing them here too would double the export time.
    sigs = {name: fns[name] for name in names}
    if serving_default is not None:
        sigs["serving_default"] = sigs[serving_default]
    tf.saved_model.save(module, path, signatures=sigs)
    extra = os.path.join(path, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, "tfp_glow.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2, sort_keys=True)
    return path


# ------------------------------------------------------------------ class-conditional models
#: Signatures of a class-conditional image model (`ConditionalFlowModel`).
CONDITIONAL_SIGNATURES = ("log_prob", "classify", "sample", "encode", "decode")


def _check_labels_in_graph(labels, num_classes, signature, n=None):
    """`labels` after run-time checks: rank 1, one per example (if `n`), in `0..K-1`."""
    checks = [
        tf.debugging.Assert(tf.equal(tf.rank(labels), 1), [
            f"tfp_glow SavedModel, signature {signature}: expects label: int32 [batch]; received rank", tf.rank(labels)]),
        tf.debugging.Assert(tf.reduce_all((labels >= 0) & (labels < num_classes)), [
            f"tfp_glow SavedModel, signature {signature}: labels must be in 0..{num_classes - 1}; received",
            labels], summarize=16),
    ]
    if n is not None:
        checks.append(tf.debugging.Assert(tf.equal(tf.size(labels), n), [
            f"tfp_glow SavedModel, signature {signature}: expects one label per example; received", tf.size(labels),
            "labels for", n, "examples"]))
    with tf.control_dependencies(checks):
        return tf.identity(labels)


def conditional_serving_functions(model):
    """The `tf.function`s of a class-conditional model's signatures (cached per model).

    | signature | inputs | outputs |
    |---|---|---|
    | `log_prob` | `x` uint8 `[N, H, W, C]`, `label` int32 `[N]` | `log_prob`, `nll`, `bits_per_dim` `[N]` of `log p(x | y)` |
    | `classify` | `x` uint8 `[N, H, W, C]` | `label` int32 `[N]` (Bayes rule), `log_posterior` `[N, K]`, `class_log_prob` `[N, K]` (`log p(x | y)`), `marginal_log_prob` `[N]` |
    | `sample` | `label` int32 `[n]`, `temperature` float32 `[]`, `seed` int32 `[]` | `images` uint8, `x` float32 `[n, H, W, C]` |
    | `encode` | `x`, `label` | `z` float32 `[N, L...]` |
    | `decode` | `z`, `label` | `x`, `images` |
    """
    if model in _CACHE:
        return _CACHE[model]
    ref = weakref.ref(model)
    event_shape = tuple(int(d) for d in model.event_shape)
    latent_shape = tuple(int(d) for d in model.latent_shape)
    k, n_bits = int(model.num_classes), model.n_bits
    x_spec = tf.TensorSpec([None, *event_shape], tf.uint8, name="x")
    y_spec = tf.TensorSpec([None], tf.int32, name="label")
    note = " (8-bit pixel levels 0..255)"

    def context(labels):
        return tf.one_hot(labels, k, dtype=tf.float32)

    def images(x):
        return {"x": tf.cast(x, tf.float32), "images": data_lib.to_uint8(x, n_bits)}

    def no_images():
        return images(tf.zeros([0, *event_shape], tf.float32))

    no_rows, no_scores = tf.zeros([0], tf.float32), tf.zeros([0, k], tf.float32)
    fns = {}

    @tf.function(input_signature=[x_spec, y_spec], autograph=False)
    def log_prob(x, label):
        x = _check_input(x, "log_prob", "x", event_shape, note)
        label = _check_labels_in_graph(label, k, "log_prob", tf.shape(x)[0])

        def full():
            x_pre, log_q = ref().dequantize(x, fixed_noise=True)
            log_p, nll, bpd = ref().log_prob_and_bpd(x_pre, log_q, labels=label)
            return {"log_prob": log_p, "nll": nll, "bits_per_dim": bpd}
        return _unless_empty(x, full, {"log_prob": no_rows, "nll": no_rows, "bits_per_dim": no_rows})
    fns["log_prob"] = log_prob

    @tf.function(input_signature=[x_spec], autograph=False)
    def classify(x):
        x = _check_input(x, "classify", "x", event_shape, note)

        def full():
            ll, joint, marginal = ref()._posterior_parts(ref().dequantize(x, fixed_noise=True)[0])
            return {"label": tf.argmax(joint, axis=-1, output_type=tf.int32),
                    "log_posterior": joint - marginal[:, None], "class_log_prob": ll, "marginal_log_prob": marginal}
        return _unless_empty(x, full, {"label": tf.zeros([0], tf.int32), "log_posterior": no_scores,
                                       "class_log_prob": no_scores, "marginal_log_prob": no_rows})
    fns["classify"] = classify

    @tf.function(input_signature=[y_spec, tf.TensorSpec([], tf.float32, name="temperature"),
                                  tf.TensorSpec([], tf.int32, name="seed")], autograph=False)
    def sample(label, temperature, seed):
        label = _check_labels_in_graph(label, k, "sample")
        check = tf.debugging.Assert(temperature >= 0.0, [
            "tfp_glow SavedModel, signature sample: expects temperature >= 0; received", temperature])
        with tf.control_dependencies([check]):
            shape = tf.concat([tf.shape(label), tf.constant(latent_shape, tf.int32)], axis=0)
            z = tf.random.stateless_normal(shape, seed=tf.stack([seed, 0]), dtype=tf.float32) * temperature
        z.set_shape([None, *latent_shape])
        return _unless_empty(z, lambda: images(ref().distribution.bijector.forward(z, conditional_input=context(label))),
                             no_images())
    fns["sample"] = sample

    @tf.function(input_signature=[x_spec, y_spec], autograph=False)
    def encode(x, label):
        x = _check_input(x, "encode", "x", event_shape, note)
        label = _check_labels_in_graph(label, k, "encode", tf.shape(x)[0])
        x_pre = ref().dequantize(x, fixed_noise=True)[0]
        return _unless_empty(x_pre, lambda: {"z": ref().distribution.bijector.inverse(x_pre, conditional_input=context(label))},
                             {"z": tf.zeros([0, *latent_shape], tf.float32)})
    fns["encode"] = encode

    @tf.function(input_signature=[tf.TensorSpec([None, *latent_shape], tf.float32, name="z"), y_spec],
                 autograph=False)
    def decode(z, label):
        z = _check_input(z, "decode", "z", latent_shape, " (latent)")
        label = _check_labels_in_graph(label, k, "decode", tf.shape(z)[0])
        return _unless_empty(z, lambda: images(ref().distribution.bijector.forward(z, conditional_input=context(label))),
                             no_images())
    fns["decode"] = decode

    _CACHE[model] = fns
    return fns


class _ConditionalServing(tf.Module):
    """The SavedModel of a conditional model: the flow's variables, `log p(y)`, metadata, functions."""

    def __init__(self, model, fns, names, info):
        super().__init__(name="tfp_glow_conditional_serving")
        self.flow_variables = _served_variables(model)
        self.class_log_prior = model.class_log_prior.value
        self.config_json = tf.Variable(json.dumps(info, sort_keys=True), trainable=False, name="config_json")
        for name in names:
            setattr(self, name, fns[name])


def export_conditional_saved_model(model, path, signatures=None, serving_default="log_prob", version=None):
    """Write a class-conditional image model (`ConditionalFlowModel`) as a SavedModel.

    Signatures: see `conditional_serving_functions`. Like `export_saved_model`, it loads with
    TensorFlow alone; labels are checked in the graph (rank, count, range).

    Args:
      model: an initialised `ConditionalFlowModel` on images.
      path: directory to write.
      signatures: a subset of `CONDITIONAL_SIGNATURES` (default all).
      serving_default: the signature also exported as `serving_default`, or `None`.
      version: as in `export_saved_model` (TF Serving's `path/<version>/`).

    Returns:
      The directory written, as a string.
    """
    if not getattr(model, "num_classes", 0) or not model.is_image:
        raise ValueError("export_conditional_saved_model exports class-conditional image models; use "
                         "export_saved_model for unconditional ones.")
    names = tuple(CONDITIONAL_SIGNATURES if signatures is None else
                  ([signatures] if isinstance(signatures, str) else signatures))
    unknown = [s for s in names if s not in CONDITIONAL_SIGNATURES]
    if unknown or not names:
        raise ValueError(f"Unknown signatures {unknown or names}; a conditional model exports {list(CONDITIONAL_SIGNATURES)}.")
    if serving_default is not None and serving_default not in names:
        raise ValueError(f"serving_default={serving_default!r} is not among the exported signatures {list(names)}.")
    if not model.is_initialized:
        raise ValueError("Cannot export an uninitialised model: run model.initialize(batch) or fit it first.")
    model = precision.float32_twin(model)  # float32 figures, as export_saved_model
    _check_variables(model, model.class_log_prior.value)
    path = _target(path, version)
    fns = conditional_serving_functions(model)
    info = _info(model, names, serving_default, num_classes=int(model.num_classes))
    with averaging.averaged_weights(model):
        return _save(_ConditionalServing(model, fns, names, info), fns, names, info, path, serving_default)
