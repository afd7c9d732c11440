"""The files a command writes: a distinct default name for each distinct output, and no file
or folder replaced without `--overwrite`.

Standard library only: a command checks its outputs before it loads a model or reads data, so a
refusal costs nothing and writes nothing.
"""
import os
import zlib

from tfp_glow.cli.options import CLIError

__all__ = ["refuse_existing", "slug", "sample_name", "score_prefix", "interpolate_name", "manipulate_name"]


def refuse_existing(paths, overwrite, hint="choose another --out"):
    """A `CLIError` (one line) if any of `paths` exists and `overwrite` is false.

    Args:
      paths: the files (or folders) the command is about to write.
      overwrite: the command's `--overwrite`.
      hint: what else the user can do.
    """
    if overwrite:
        return
    existing = [p for p in paths if p and os.path.lexists(p)]
    if existing:
        names = ", ".join(repr(p) for p in existing)
        raise CLIError(f"{names} already exist{'s' if len(existing) == 1 else ''}; pass --overwrite to replace "
                       f"{'it' if len(existing) == 1 else 'them'}, or {hint}.")


def slug(text, limit=40):
    """`text` reduced to a file-name part: letters, digits, `.` and `-` kept, the rest `_`; a
    long one is cut and given a checksum of the whole, so distinct texts stay distinct."""
    text = os.path.basename(os.fspath(text).rstrip("/\\")) or os.fspath(text)
    if text.lower().endswith(".npz"):
        text = text[:-4]
    out = "".join(c if (c.isalnum() or c in ".-") else "_" for c in text) or "data"
    if len(out) > limit:
        out = f"{out[:limit - 9]}_{zlib.crc32(text.encode()):08x}"
    return out


def _numbers(values):
    return "-".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def sample_name(args):
    """`samples[_by_class][_labels_L][_guidance<G>](_t<T>|_levels_<T1-T2>)_seed<S>.png`: one name per kind of
    grid `tfp-glow sample` draws (the plain one keeps `samples_t<T>_seed<S>.png`); another `--n`
    of the same kind is the same grid, larger or smaller, so it is refused, not renamed."""
    parts = ["samples"]
    if getattr(args, "by_class", False):
        parts.append("by_class")
    if getattr(args, "labels", None):
        parts.append("labels_" + slug(_numbers(args.labels), limit=24))
    if getattr(args, "guidance", None) is not None:
        parts.append(f"guidance{args.guidance:g}")
    levels = getattr(args, "level_temperatures", None)
    parts.append(f"levels_{_numbers(levels)}" if levels else f"t{args.temperature:g}")
    parts.append(f"seed{args.seed}")
    return "_".join(parts) + ".png"


def score_prefix(data, ood, split):
    """`score_<data>[_vs_<ood>][_<split>]`: the CSV and PNG of `tfp-glow score` without and
    with `--ood`, and of each split, never share a name (the test split adds nothing)."""
    prefix = f"score_{slug(data)}" + (f"_vs_{slug(ood)}" if ood else "")
    return prefix + ("" if split == "test" else f"_{split}")


def interpolate_name(args):
    """`interpolate_<A>_<B>[_<method>][_<split>].png`, the defaults adding nothing."""
    name = f"interpolate_{args.a}_{args.b}"
    name += "" if args.method == "both" else f"_{args.method}"
    name += "" if args.split == "test" else f"_{args.split}"
    return name + ".png"


def manipulate_name(args):
    """`manipulate_<attribute>[_<split>].png` (`A:B` as `AtoB`), the default split adding nothing."""
    name = "manipulate_" + args.attribute.replace(":", "to")
    return name + ("" if args.split == "train" else f"_{args.split}") + ".png"
