"""Run apple/ml-tarflow's `MetaBlock` once on fixed weights and write a test fixture.

Needs only `torch`, `numpy` and the reference's `transformer_flow.py` (not copied here; its
path is an argument). It does not import `tfp_glow`, so it runs in a PyTorch-only venv:

    git --git-dir=<mirror of apple/ml-tarflow> show HEAD:transformer_flow.py > /tmp/transformer_flow.py
    python tfp_glow/bench/tarflow_reference.py --reference /tmp/transformer_flow.py \
        --out tests/fixtures/tarflow_metablock.npz

For each case (`identity`: unconditional, identity order; `flip`: class-conditional, flip
order) the fixture holds, computed in float32 (the reference's LayerNorm upcasts its input
to float32, so it cannot run in float64):

- `<case>/x [B, H, W, C]`: the input image (channels-last; the reference sees it as
  `[B, C, H, W]` and cuts it into tokens with `torch.nn.functional.unfold`, i.e. token
  features ordered `(c, i, j)` within a patch);
- `<case>/w/<torch parameter name>`: every parameter, in PyTorch's layout (`Linear.weight` is
  `[out, in]`);
- `<case>/z [B, H, W, C]` and `<case>/logdet [B]`: `MetaBlock.forward(x, y)` (the density
  pass), the latent folded back to an image; `logdet` is the reference's own,
  `-mean(a)` over tokens and token values;
- `<case>/z_sample`, `<case>/x_sample`: a random latent and `MetaBlock.reverse` of it;
- `<case>/y [B]` (conditional only) and `<case>/z_mean_class`: the density pass with `y=None`
  (the mean class embedding).

References:
  Zhai et al., "Normalizing Flows are Capable Generative Models", 2024, arXiv:2412.06329
  (apple/ml-tarflow, `transformer_flow.py`).
"""
import argparse
import hashlib
import importlib.util
import math

import numpy as np
import torch

#: The fixture's configuration: tiny, so the file stays small and the test fast.
CONFIG = dict(batch=4, height=8, channels_in=2, patch_size=2, width=16, head_dim=8, layers=2, expansion=4,
              num_classes=3)


def load_reference(path):
    spec = importlib.util.spec_from_file_location("transformer_flow", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def randomize(block, generator):
    """Random weights everywhere (the reference zero-initialises its output projection)."""
    with torch.no_grad():
        for name, p in block.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
            elif p.ndim == 2 and "embed" not in name:
                gain = 0.3 if name.startswith("proj_out") else 0.8
                p.copy_(gain / math.sqrt(p.shape[1]) * torch.randn(p.shape, generator=generator, dtype=p.dtype))
            else:  # biases, positional and class embeddings
                p.copy_(0.1 * torch.randn(p.shape, generator=generator, dtype=p.dtype))


def to_tokens(img, p):
    """`[B, C, H, W]` -> `[B, T, C p p]`, the reference's `Model.patchify`."""
    return torch.nn.functional.unfold(img, p, stride=p).transpose(1, 2)


def to_image(tokens, size, p):
    """`[B, T, C p p]` -> `[B, C, H, W]`, the reference's `Model.unpatchify`."""
    return torch.nn.functional.fold(tokens.transpose(1, 2), (size, size), p, stride=p)


def nhwc(img):
    return img.permute(0, 2, 3, 1).detach().numpy()


def run_case(tf_ref, case, seed):
    c = CONFIG
    g = torch.Generator().manual_seed(seed)
    conditional = case == "flip"
    t = (c["height"] // c["patch_size"]) ** 2
    perm = tf_ref.PermutationFlip(t) if case == "flip" else tf_ref.PermutationIdentity(t)
    block = tf_ref.MetaBlock(c["channels_in"] * c["patch_size"] ** 2, c["width"], t, perm, num_layers=c["layers"],
                             head_dim=c["head_dim"], expansion=c["expansion"],
                             num_classes=c["num_classes"] if conditional else 0)
    randomize(block, g)
    block.eval()
    shape = (c["batch"], c["channels_in"], c["height"], c["height"])
    img = torch.randn(shape, generator=g, dtype=torch.float32)
    y = torch.randint(0, c["num_classes"], (c["batch"],), generator=g) if conditional else None
    out = {f"{case}/x": nhwc(img)}
    out.update({f"{case}/w/{k}": v.detach().numpy() for k, v in block.named_parameters()})
    with torch.no_grad():
        z, logdet = block(to_tokens(img, c["patch_size"]), y)
        out[f"{case}/z"] = nhwc(to_image(z, c["height"], c["patch_size"]))
        out[f"{case}/logdet"] = logdet.numpy()
        z_s = torch.randn(shape, generator=g, dtype=torch.float32)
        # reverse writes into its input in place (identity order): give it a copy
        x_s = block.reverse(to_tokens(z_s, c["patch_size"]).clone(), y)
        out[f"{case}/z_sample"] = nhwc(z_s)
        out[f"{case}/x_sample"] = nhwc(to_image(x_s, c["height"], c["patch_size"]))
        if conditional:
            out[f"{case}/y"] = y.numpy()
            z_mean, _ = block(to_tokens(img, c["patch_size"]), None)
            out[f"{case}/z_mean_class"] = nhwc(to_image(z_mean, c["height"], c["patch_size"]))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, help="path to apple/ml-tarflow's transformer_flow.py")
    parser.add_argument("--out", default="tests/fixtures/tarflow_metablock.npz")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    tf_ref = load_reference(args.reference)
    out = {}
    for k, case in enumerate(("identity", "flip")):
        out.update(run_case(tf_ref, case, args.seed + k))
    with open(args.reference, "rb") as f:
        out["reference_sha256"] = np.array(hashlib.sha256(f.read()).hexdigest())
    out["torch_version"] = np.array(torch.__version__)
    for key, value in CONFIG.items():
        out[f"config/{key}"] = np.array(value)
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out}: {len(out)} arrays")


if __name__ == "__main__":
    main()
