"""Conditioning through TFP's bijector kwargs: one `conditional_input` reaches every member.

A conditional bijector takes a context `c` of shape `[*batch, K]` (float; a one-hot label
for a class-conditional model) as the TFP keyword argument `conditional_input`:

    bijector.forward(z, conditional_input=c)
    dist.log_prob(x, bijector_kwargs={"conditional_input": c})
    dist.sample(n, bijector_kwargs={"conditional_input": c})

TFP's `tfb.Chain` routes keyword arguments by member name only
(`chain.forward(x, coupling_0={"conditional_input": c}, ...)`), so a context given to the
chain itself never reaches its members (TFP issue #1410), and nested chains need nested
dicts of names. Our `Chain` and the lean walk (`walk.py`) route with `member_kwargs`: TFP's
by-name dicts still work, and a top-level `conditional_input` is handed to every member that
is conditional (`is_conditional`), through nested chains and `tfb.Invert`. Members that are
not conditional (ActNorm, 1x1 convolutions, TFP's own bijectors) never see it.
"""
import keras
import tensorflow as tf
from tensorflow_probability.python.bijectors import chain as chain_lib
from tensorflow_probability.python.bijectors import invert as invert_lib

__all__ = ["CONDITIONAL_INPUT", "GUIDANCE", "ContextProjection", "broadcast_context", "is_conditional",
           "mean_class_context", "member_kwargs", "refuse_context", "require_context", "takes_guidance"]

#: The TFP keyword argument our conditional bijectors take.
CONDITIONAL_INPUT = "conditional_input"
#: The sampling-pass keyword argument of classifier-free guidance (`TransformerAutoregressive`).
GUIDANCE = "guidance"


def is_conditional(bijector):
    """True if `bijector` (or a member, through chains and `tfb.Invert`) takes `conditional_input`."""
    if isinstance(bijector, chain_lib._Chain):
        return any(is_conditional(b) for b in bijector.bijectors)
    if isinstance(bijector, invert_lib._Invert):
        return is_conditional(bijector.bijector)
    return bool(getattr(bijector, "_is_conditional", False))


def takes_guidance(bijector):
    """True if `bijector` (or a member) takes `guidance` on its sampling pass."""
    if isinstance(bijector, chain_lib._Chain):
        return any(takes_guidance(b) for b in bijector.bijectors)
    if isinstance(bijector, invert_lib._Invert):
        return takes_guidance(bijector.bijector)
    return bool(getattr(bijector, "_takes_guidance", False))


def member_kwargs(member, kwargs):
    """The keyword arguments a chain hands to `member`.

    TFP's routing (`kwargs[member.name]`), plus the chain's own `conditional_input` when the
    member is conditional, and its `guidance` when the member takes it (a by-name value wins).
    """
    routed = dict(kwargs.get(member.name, {}))
    if kwargs.get(CONDITIONAL_INPUT) is not None and is_conditional(member):
        routed.setdefault(CONDITIONAL_INPUT, kwargs[CONDITIONAL_INPUT])
    if kwargs.get(GUIDANCE) is not None and takes_guidance(member):
        routed.setdefault(GUIDANCE, kwargs[GUIDANCE])
    return routed


def refuse_context(context, who):
    """Raises a `ValueError` if `context` is given to `who`, a bijector that is not conditional."""
    if context is not None:
        raise ValueError(f"{who} is not conditional (context_dim=0) but received `{CONDITIONAL_INPUT}`.")


def require_context(context, context_dim, who):
    """`context` as a float tensor `[..., context_dim]`; clear errors when missing or misshapen."""
    if context is None:
        raise ValueError(f"{who} is conditional (context of size {context_dim}) and needs "
                         f"`{CONDITIONAL_INPUT}`: pass it as a bijector kwarg, e.g. "
                         f"dist.log_prob(x, bijector_kwargs={{'{CONDITIONAL_INPUT}': c}}).")
    context = tf.convert_to_tensor(context)
    if not context.dtype.is_floating:
        raise ValueError(f"{who}: `{CONDITIONAL_INPUT}` must be a float tensor [..., {context_dim}] (one-hot "
                         f"labels for class conditioning); received dtype {context.dtype.name}.")
    if context.shape.rank is None or context.shape.rank < 1 or context.shape[-1] != context_dim:
        raise ValueError(f"{who}: `{CONDITIONAL_INPUT}` must have shape [..., {context_dim}]; "
                         f"received shape {context.shape}.")
    return context


def mean_class_context(context, dtype=None):
    """The uniform context `1/K` in the shape of `context [..., K]`: the mean class embedding.

    A one-hot label's embedding is linear in it, so `1/K` embeds the average of the classes:
    the "no label" a class-conditional flow learns under label dropout, which classifier-free
    guidance extrapolates away from.
    """
    dtype = tf.as_dtype(dtype or context.dtype)
    return tf.fill(tf.shape(context), tf.constant(1.0 / context.shape[-1], dtype))


def broadcast_context(context, x, event_rank):
    """The context `[*batch_c, K]` broadcast to the batch shape of `x` `[*batch, *event]`: `[*batch, K]`."""
    batch = tf.shape(x)[:tf.rank(x) - event_rank] if x.shape.rank is None else tf.shape(x)[:x.shape.rank - event_rank]
    k = context.shape[-1]
    out = tf.broadcast_to(context, tf.concat([batch, [k]], axis=0))
    if x.shape.rank is not None:
        out.set_shape(x.shape[:x.shape.rank - event_rank].concatenate([k]))
    return out


class ContextProjection(keras.layers.Layer):
    """`W c + b` with `W`, `b` zero-initialised: a learned embedding of the context.

    openai/glow's `ycond`: `h += linear_zeros(y_onehot, n)`. For a one-hot `c` this is a
    learned vector per class; starting at zero, a new conditional layer starts as the
    unconditional one.

    Args:
      units: Python int, the output size.
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, input_shape):
        k = int(input_shape[-1])
        self.kernel = self.add_weight(shape=(k, self.units), initializer="zeros", name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, c):
        return tf.einsum("...k,ku->...u", tf.cast(c, self.compute_dtype), self.kernel) + self.bias

    def get_config(self):
        return {**super().get_config(), "units": self.units}
