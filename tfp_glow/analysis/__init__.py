"""What a trained flow tells about data: one module an idea; each takes a model as an argument.

`latent` (encode, decode, interpolate, attribute and class directions, per-level temperature),
`scoring` (out-of-distribution scores and AUROC).
"""
