"""`tfp-glow export RUN_DIR PATH [--version N]`: a trained run as a TensorFlow SavedModel
(`tfp_glow.serving.export_saved_model`, also `tfp_glow.serving.export_saved_model`); with
`--version`, in TF Serving's `PATH/N/` layout. An earlier SavedModel at PATH is replaced only
with `--overwrite`, and only once the new one is complete."""
import os
import shutil

from tfp_glow.cli.common import load_run
from tfp_glow.cli.options import CLIError, say
from tfp_glow.serving import export_saved_model

__all__ = ["run"]


def run(args):
    """Exports the run with the signatures `args.signatures` names (default: all); returns PATH."""
    version = getattr(args, "version", None)
    replace = False
    if version is None:  # with --version, PATH is the base of numbered versions, never overwritten
        replace = _check_path(args.path, getattr(args, "overwrite", False))
    model, _ = load_run(args.run_dir)
    signatures = None if args.signatures is None else [n.strip() for n in args.signatures.split(",") if n.strip()]
    if version is not None and version != "next":
        try:
            version = int(version)
        except ValueError:
            raise CLIError(f"--version must be an int >= 1 or 'next'; received {version!r}.") from None
    target = f"{os.path.normpath(args.path)}.tmp-export{os.getpid()}" if replace else args.path
    try:
        # one builder: a conditional model gets label inputs and a classify signature
        path = export_saved_model(model, target, signatures=signatures, version=version)
    except (ValueError, FileExistsError) as e:
        raise CLIError(str(e)) from e
    finally:
        if replace and not os.path.isfile(os.path.join(target, "saved_model.pb")):
            shutil.rmtree(target, ignore_errors=True)  # a failed export leaves the old SavedModel as it was
    if replace:
        path = _swap(target, args.path)
    say(f"wrote {path}")
    return path


def _swap(new, path):
    """Puts the finished SavedModel `new` in the place of the one at `path`; returns `path`."""
    old = f"{os.path.normpath(path)}.old-export{os.getpid()}"
    os.rename(path, old)
    os.rename(new, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def _check_path(path, overwrite):
    """PATH must be new or an empty folder; an earlier SavedModel is replaced only with
    `overwrite` (returns True then: export beside it and swap, so a failure keeps it)."""
    if not os.path.exists(path):
        return False
    if not os.path.isdir(path):
        raise CLIError(f"{path!r} exists and is not a folder; export writes a SavedModel folder: choose a new PATH.")
    entries = os.listdir(path)
    if not entries:
        return False
    if "saved_model.pb" not in entries:
        raise CLIError(f"{path!r} is a folder with other files in it ({', '.join(sorted(entries)[:3])}"
                       f"{', ...' if len(entries) > 3 else ''}); export into a new or empty folder.")
    if not overwrite:
        raise CLIError(f"{path!r} already holds a SavedModel; pass --overwrite to replace it, or choose a new PATH "
                       f"(or --version N for TF Serving's numbered versions).")
    return True
