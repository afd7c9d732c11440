"""`tfp-glow export RUN_DIR PATH [--version N]`: a trained run as a TensorFlow SavedModel
(`tfp_glow.export.export_saved_model`); with `--version`, in TF Serving's `PATH/N/` layout."""
from tfp_glow.cli.common import load_run
from tfp_glow.cli.options import CLIError, say
from tfp_glow.export import export_saved_model

__all__ = ["run"]


def run(args):
    """Exports the run with the signatures `args.signatures` names (default: all); returns PATH."""
    model, _ = load_run(args.run_dir)
    signatures = None if args.signatures is None else [n.strip() for n in args.signatures.split(",") if n.strip()]
    version = getattr(args, "version", None)
    if version is not None and version != "next":
        try:
            version = int(version)
        except ValueError:
            raise CLIError(f"--version must be an int >= 1 or 'next'; received {version!r}.") from None
    try:
        path = export_saved_model(model, args.path, signatures=signatures, version=version)
    except (ValueError, FileExistsError) as e:
        raise CLIError(str(e)) from e
    say(f"wrote {path}")
    return path
