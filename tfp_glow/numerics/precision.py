"""Mixed precision: bf16 conditioner networks where the hardware computes bf16 natively.

Under Keras' `mixed_bfloat16` policy the conditioner networks (coupling and prior
convolutions, `tfp_glow.bijectors.networks`) compute in bfloat16 with float32 weights; every bijector's
data path (what `x` becomes on its way to `z`), the log-determinants, the priors and the loss
stay float32 (`FlowModel` is float32 whatever the policy). On hardware with native bf16
(x86 CPUs with AVX512_BF16 or AMX, NVIDIA GPUs of compute capability 8.0 and up) that runs the
bench Glow about 1.6x faster than float32; where bf16 is emulated it is slower, so float32
stays the default there (docs/measurements/issue18.md).

`"auto"` is what `tfp-glow train --mixed-precision` defaults to: `mixed_bfloat16` with native
bf16, else `none` (float32).
"""
import contextlib
import os

import keras
import tensorflow as tf

POLICIES = ("none", "mixed_bfloat16", "mixed_float16")
CHOICES = ("auto",) + POLICIES
#: CPU flags (Linux `/proc/cpuinfo`) of native bf16 arithmetic.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo_path="/proc/cpuinfo"):
    """The CPU's feature flags as a set (empty where `/proc/cpuinfo` cannot be read)."""
    try:
        with open(cpuinfo_path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def gpu_compute_capabilities():
    """`[(major, minor), ...]` of the visible GPUs (empty on a CPU-only machine)."""
    caps = []
    for gpu in tf.config.list_physical_devices("GPU"):
        cap = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if cap:
            caps.append(tuple(int(v) for v in cap))
    return caps


def has_native_bf16(flags=None, gpu_capabilities=None):
    """Whether the device that trains computes bf16 natively.

    With GPUs: all of them have compute capability >= 8.0 (Ampere and later). Without: the CPU
    has one of `BF16_CPU_FLAGS`.

    Args:
      flags: the CPU flags to judge (default `cpu_flags()`).
      gpu_capabilities: the GPUs' `(major, minor)` (default `gpu_compute_capabilities()`).
    """
    caps = gpu_compute_capabilities() if gpu_capabilities is None else list(gpu_capabilities)
    if caps:
        return all(major >= 8 for major, _ in caps)
    flags = cpu_flags() if flags is None else set(flags)
    return any(f in flags for f in BF16_CPU_FLAGS)


def resolve_policy(choice, native_bf16=None):
    """`"auto"` -> `"mixed_bfloat16"` with native bf16 (`has_native_bf16`), else `"none"`; any
    other choice of `CHOICES` as it is.

    `TFP_GLOW_MIXED_PRECISION` in the environment replaces `"auto"` (for a machine whose
    flags mislead, and for tests).

    Raises:
      ValueError: a choice outside `CHOICES`.
    """
    if choice not in CHOICES:
        raise ValueError(f"mixed precision must be one of {', '.join(CHOICES)}; received {choice!r}.")
    if choice != "auto":
        return choice
    forced = os.environ.get("TFP_GLOW_MIXED_PRECISION")
    if forced:
        if forced not in POLICIES:
            raise ValueError(f"TFP_GLOW_MIXED_PRECISION must be one of {', '.join(POLICIES)}; received {forced!r}.")
        return forced
    native = has_native_bf16() if native_bf16 is None else bool(native_bf16)
    return "mixed_bfloat16" if native else "none"


def keras_policy_name(policy):
    """Our policy name (`none` for float32) as Keras names it."""
    return "float32" if policy in (None, "none") else policy


def uses_reduced_precision(model):
    """Whether any layer of `model` computes in a 16-bit float (a mixed-precision policy)."""
    return any(getattr(layer, "compute_dtype", "float32") in ("bfloat16", "float16")
               for layer in model._flatten_layers(include_self=False))


@contextlib.contextmanager
def float32_policy():
    """A block in which Keras' global policy is float32 (the caller's comes back however it ends):
    models built inside compute in float32 throughout, whatever policy trained their weights."""
    previous = keras.mixed_precision.global_policy()
    try:
        keras.mixed_precision.set_global_policy("float32")
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def float32_twin(model):
    """`model` itself if it computes in float32 throughout; else the same model rebuilt under
    the float32 policy (in the model's distribution strategy), holding the same weights.

    Reported figures come from the twin, so that no bits/dim is flattered (or hurt) by bf16
    rounding in the conditioner networks: they are what a float32 model with these weights
    gets. Variables are float32 under every Keras mixed policy, so the copy is exact.

    A model with a weight average (`model.weight_average`, `tfp_glow.numerics.averaging`) gets one over
    the twin's own variables, with the same decay (`model.ema_decay`), before the copy, so the
    twin holds the averages too and evaluates, samples and exports with them as the model
    does. (Duck-typed: this module imports nothing from tfp_glow.) The twin is not compiled.
    """
    if not uses_reduced_precision(model):
        return model
    with float32_policy(), model.distribute_strategy.scope():
        twin = type(model).from_config(model.get_config())
        average = getattr(model, "weight_average", None)
        if average is not None:  # as averaging.attach builds it
            twin.weight_average = type(average)(twin.trainable_variables, average.decay)
        twin.ema_decay = getattr(model, "ema_decay", None)
    twin.set_weights(model.get_weights())
    return twin


def float32_for_figures(model):
    """The model whose figures are reported: `model` if it computes in float32, else its float32
    twin (`float32_twin`: the same weights and weight average), compiled as `model` is for
    evaluation (XLA or not, the weight average on or off)."""
    twin = float32_twin(model)
    if twin is not model:
        with model.distribute_strategy.scope():
            twin.compile(jit_compile=bool(model.jit_compile), ema_decay=model.ema_decay)
    return twin
