"""What keeps training finite and fast, below every model: one module an idea.

`stability` (warmup, the learning-rate decay after it, global-norm clipping, non-finite steps
that never reach the weights), `precision` (the mixed-precision policy: native bf16 detection,
float32 twins for the figures), `averaging` (the exponential moving average of the weights).
None imports anything else of tfp_glow.
"""
