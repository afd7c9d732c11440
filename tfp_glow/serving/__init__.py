"""Serve a trained flow: a SavedModel with signatures that loads with TensorFlow alone.

The SavedModel holds a plain `tf.Module`: the flow's variables (every Keras weight of the
model, actnorm state included) and graph functions of core TensorFlow ops only. Loading it
needs TensorFlow alone (`tf.saved_model.load`, `saved_model_cli`, TF Serving): neither
`tfp_glow` nor TensorFlow Probability is imported, and Keras is not used.

Modules: `signatures` (the one builder, with an optional label context), `graph` (the model's
pieces it calls), `checks` (run-time input checks), `layout` (format marker, metadata, TF
Serving's version folders), `saved_model` (the export).

Signatures (every batch dimension is dynamic; `H, W, C` is the model's event shape, `D` its
size for vector models, `L...` the latent shape, `K` the classes of a conditional model):

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

A class-conditional image model (`ConditionalFlowModel`) serves `log_prob`, `sample`,
`encode`, `decode` with one more input, `label` int32 `[N]` in `0..K-1` (`log p(x | y)`, and
the flow given `c = onehot(y)`), and `classify` (`x` -> `label` int32 `[N]` by Bayes' rule,
`log_posterior` and `class_log_prob` `[N, K]`, `marginal_log_prob` `[N]`). Its `sample`
takes rows like the unconditional one, `label`, `temperature`, `seed` all `[N]`, and row `i`
is the unconditional `sample`'s row decoded with label `i`; a scalar `temperature` and `seed`
(the call of format 1, `tfp_glow.serving.layout`) still work and draw all `N` rows at once,
as `sample_n(N, temperature, seed)` does. A class-conditional TarFlow also serves
`sample_guided` (`label`, `temperature`, `seed` `[N]` and a scalar `guidance` >= 0):
classifier-free guidance, as `FlowModel.sample(..., guidance=g)`. A model trained with
`noise_sigma > 0` serves denoised samples (one score step, `models.denoising`), as `sample` does.

Every signature but `sample_n` takes a batch on axis 0 of every input, so TF Serving's REST
row format (`{"instances": [...]}`, one object per example) and its server-side batching can
call it; `*_image` inputs are named `image_bytes` so that REST clients send them as
`{"b64": "<base64 PNG>"}`. Row `i` of `sample` is `sample_n(1, temperature[i], seed[i])`.
`export_saved_model(..., version=N)` (`tfp-glow export --version N`) writes TF Serving's
layout `PATH/N/`.

A model trained under a mixed-precision policy (bf16 or float16 conditioner networks) is
exported as its float32 twin (`precision.float32_twin`: the same weights in a float32 model), so
the SavedModel serves float32 figures and runs in float32 everywhere. A model that keeps an
average of its weights (`FlowModel.compile(ema_decay=...)`) is exported with the averages as
its weights (`averaging.averaged_weights`), as `evaluate` and `sample` use them.

Image signatures reduce 8-bit input to the model's `n_bits` and dequantize it with the fixed
noise pattern of the model's evaluation (`FlowModel.eval_noise`, as
`FlowModel.predict_step`/`test_step`/`call`), so they give the live model's numbers. A model
with variational dequantization pushes that noise through its learned `q(u | x)`: `nll` and
`bits_per_dim` of `log_prob` and `log_prob_image` are then the variational bound
`-log p(x + u) + D n log 2 + log q(u | x)` with that one `u`, and `log_prob` is the flow's
`log p(x + u)`, as `evaluate` and `predict` report them; `encode` maps that `x + u`.
`log_prob_float` scores the continuous input it is given, without `q`.

Latents come from the one shared sampler (`tfp_glow.models.sampling.draw_latent`, `draw_rows`):
`sample_n` draws `temperature * tf.random.stateless_normal([n, *L], seed=[seed, 0])`, so the
same seed gives the same images here, in `sample_stateless` and in `FlowModel.sample` on the
live model.

A wrong input shape fails with an `InvalidArgumentError` naming the signature and its
expected input (`signature log_prob: expects x: uint8 [batch, 8, 8, 1] ...`). A wrong dtype
is refused by TensorFlow before the graph runs (through `loaded.signatures[...]`: "was
expected to be a uint8 tensor"; through the restored functions `loaded.log_prob(...)`: "Can
not cast TensorSpec(...) to TensorSpec(shape=(None, 8, 8, 1), dtype=tf.uint8, name='x')").
"""
from tfp_glow.serving.layout import FORMAT, format_version, read_metadata, versioned_path
from tfp_glow.serving.saved_model import export_conditional_saved_model, export_saved_model
from tfp_glow.serving.signatures import (CONDITIONAL_SIGNATURES, IMAGE_SIGNATURES, VECTOR_SIGNATURES,
                                         sample_stateless, serving_functions, signature_names)

__all__ = ["CONDITIONAL_SIGNATURES", "FORMAT", "IMAGE_SIGNATURES", "VECTOR_SIGNATURES",
           "conditional_serving_functions", "export_conditional_saved_model", "export_saved_model",
           "format_version", "read_metadata", "sample_stateless", "serving_functions", "signature_names",
           "versioned_path"]

#: The functions of a class-conditional model (format 1's name): `serving_functions` builds both.
conditional_serving_functions = serving_functions
