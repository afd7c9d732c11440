"""`tfp-glow`: the command line. It parses and reports; the library decides.

What this subpackage holds:

    __init__.py   main (the console script `tfp-glow`, and `python -m tfp_glow.cli`) and
                  build_parser
    options.py    the parser: one function per subcommand, CLIError, say (stdlib only)
    train_options.py  train's options by group, and the help texts (stdlib only)
    arg_types.py  the argument types and the help formatter (stdlib only)
    quiet.py      imports TensorFlow without its start-up lines (stdlib only)
    outputs.py    distinct default output names; no file replaced without --overwrite (stdlib only)
    common.py     what the commands share when they run: open a run, find its data from any
                  folder (or --data), check a split, evaluate
    train.py      tfp-glow train     sample.py     tfp-glow sample
    evaluate.py   tfp-glow evaluate  export.py     tfp-glow export
    bench.py      tfp-glow bench: hands its arguments to tfp_glow.bench.main
    train_data.py train's hooks for --conditional (labelled splits, datasets, figures)
    interpolate.py, manipulate.py  the latent toolkit (tfp_glow.analysis.latent)
    score.py      tfp-glow score: per-example bits/dim, OOD scores and AUROC (tfp_glow.analysis.scoring)

The decisions it reports live below it: the defaults per data kind, the explicit options over
them and the compiled model in `tfp_glow.recipes` (`recipe_for`, `build_model`,
`default_run_dir`), the held-out splits in `tfp_glow.data.splits` (`load_split`), run directories
in `tfp_glow.runs`.

What it may import: anything in tfp_glow; it is the top layer, and nothing imports it except
the console script. `main` imports a command's module only when that command runs, for
start-up time: each command module imports TensorFlow at its top, and `tfp-glow --help`
builds the parser (options.py, train_options.py, arg_types.py: standard library only) without it. It is not there to dodge a
cycle.

    tfp-glow train                      # small Glow on the offline 8x8 digits, a few minutes
    tfp-glow train --data moons         # RealNVP on 2-D toy data, with density pictures
    tfp-glow sample runs/glow-digits --temperature 0.7 --out samples.png
    tfp-glow evaluate runs/glow-digits  # test bits/dim with fixed dequantization noise
    tfp-glow export runs/glow-digits exported/

Errors in the input (unknown data, data that does not fit the model, bad pixel values, an
empty data set, a missing run directory) print `error: <message>` to stderr and exit with
code 2 before any training step; a NaN/inf loss during training exits with code 1.
Every other failure (a full disk, a folder that cannot be written, an unexpected exception)
is one `error: ...` line too, exit code 1; Ctrl-C exits with 130. `tfp-glow --debug ...`
(or TFP_GLOW_DEBUG=1) shows the full traceback instead.

TensorFlow's start-up lines (absl, oneDNN, CUDA) are held back (`quiet.py`; every other line
TensorFlow writes while it loads is passed on); `--debug` shows them.
"""
import errno
import importlib
import os
import sys

from tfp_glow.cli import quiet
from tfp_glow.cli.options import CLIError, build_parser
from tfp_glow.extras import MissingExtraError

__all__ = ["main", "build_parser", "CLIError"]

# Library modules an installation may lack, by the command that needs them: (module, message).
_OPTIONAL = {
    "export": ("tfp_glow.serving", "export is not available in this installation: the module tfp_glow.serving "
                                  "(export_saved_model) is missing."),
    "bench": ("tfp_glow.bench", "bench is not available in this installation: the module tfp_glow.bench is missing."),
}


def _command(name):
    """The module of command `name`, imported now that it runs (start-up time, see above)."""
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        module, message = _OPTIONAL.get(name, (None, None))
        if module and e.name and e.name.startswith(module):
            raise CLIError(message) from e
        raise


def _asks_for_help(argv):
    """Whether a command line (before a bare `--`) holds `-h` or `--help`."""
    end = argv.index("--") if "--" in argv else len(argv)
    return any(a in ("-h", "--help") for a in argv[:end])


def _fail(message, code):
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def _os_error_message(e):
    """An `OSError` in one line: what failed, on which file, and what to do."""
    where = f" ({e.filename})" if getattr(e, "filename", None) else ""
    reason = e.strerror or str(e)
    if e.errno == errno.ENOSPC:
        return (f"no space left on the device{where}; free some space and continue with --resume "
                f"(every completed epoch is kept)")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write{where}: {reason}; choose a writable --run-dir / output path"
    return f"{reason}{where}"


def main(argv=None):
    """Entry point of `tfp-glow`; returns 0 on success, raises `SystemExit` on errors."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug anywhere before a bare `--` (the global option; accepted after the command too)
    end = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:end] or os.environ.get("TFP_GLOW_DEBUG", "") not in ("", "0")
    argv = [a for i, a in enumerate(argv) if not (a == "--debug" and i < end)]
    try:
        return _main(argv, debug)
    except SystemExit:
        raise
    except KeyboardInterrupt as e:
        if debug:
            raise
        # `train` says which epoch its run keeps (cli/train.py); other commands leave nothing half done
        _fail(str(e) or "interrupted", 130)
    except OSError as e:
        if debug:
            raise
        _fail(_os_error_message(e), 1)
    except Exception as e:  # anything unexpected: one line, the traceback only with --debug
        if debug:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        _fail(f"{type(e).__name__}: {first} (run `tfp-glow --debug ...` for the traceback)", 1)


def _main(argv, debug=False):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    parser = build_parser()
    try:
        if argv and argv[0] == "bench":  # tfp_glow.bench parses its own options
            if not _asks_for_help(argv[1:]):  # its --help needs no TensorFlow
                quiet.import_tensorflow(debug)
            rc = _command("bench").run(argv[1:])
            return rc if isinstance(rc, int) else 0
        args = parser.parse_args(argv)  # --help ends here, before TensorFlow loads
        if args.command is None:
            parser.print_help()
            return 0
        quiet.import_tensorflow(debug)  # no start-up lines unless --debug (cli/quiet.py)
        _command(args.command).run(args)  # train runs --conditional too (cli/train_data.py)
        return 0
    except (CLIError, MissingExtraError) as e:  # the user's input, or an extra to install
        print(f"error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2)
