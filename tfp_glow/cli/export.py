"""`tfp-glow export RUN_DIR PATH [--version N]`: a trained run as a TensorFlow SavedModel
(`tfp_glow.serving.export_saved_model`, also `tfp_glow.serving.export_saved_model`); with
`--version`, in TF Serving's `PATH/N/` layout."""
import os

from tfp_glow.cli.common import load_run
from tfp_glow.cli.options import CLIError, say
from tfp_glow.serving import export_saved_model

__all__ = ["run"]


def run(args):
    """Exports the run with the signatures `args.signatures` names (default: all); returns PATH."""
    if getattr(args, "version", None) is None:  # with --version, PATH is the base of numbered versions
        _check_path(args.path)
    model, _ = load_run(args.run_dir)
    signatures = None if args.signatures is None else [n.strip() for n in args.signatures.split(",") if n.strip()]
    version = getattr(args, "version", None)
    if version is not None and version != "next":
        try:
            version = int(version)
        except ValueError:
            raise CLIError(f"--version must be an int >= 1 or 'next'; received {version!r}.") from None
    try:
        # one builder: a conditional model gets label inputs and a classify signature
        path = export_saved_model(model, args.path, signatures=signatures, version=version)
    except (ValueError, FileExistsError) as e:
        raise CLIError(str(e)) from e
    say(f"wrote {path}")
    return path


def _check_path(path):
    """PATH must be new, an empty folder, or an earlier SavedModel (which is replaced)."""
    if not os.path.exists(path):
        return
    if not os.path.isdir(path):
        raise CLIError(f"{path!r} exists and is not a folder; export writes a SavedModel folder: choose a new PATH.")
    entries = os.listdir(path)
    if entries and "saved_model.pb" not in entries:
        raise CLIError(f"{path!r} is a folder with other files in it ({', '.join(sorted(entries)[:3])}"
                       f"{', ...' if len(entries) > 3 else ''}); export into a new or empty folder.")
