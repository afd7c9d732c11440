"""`run_cli(argv)`: the command line run in-process, as the CLI tests call it."""
import contextlib
import io

from tfp_glow import cli


def run_cli(argv):
    """`cli.main(argv)` -> (return code, stdout, stderr); argparse's exits give their code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main(argv)
        except SystemExit as e:
            rc = e.code
    return rc, out.getvalue(), err.getvalue()
