"""`tfp-glow evaluate RUN_DIR`: bits/dim of a trained run on a split, with fixed dequantization
noise, so the figure repeats run to run and equals the one `train` printed. A class-conditional
run is evaluated on the split's labels: bits/dim of log p(x | y) and the Bayes-rule accuracy."""
import keras

from tfp_glow import data as data_lib
from tfp_glow import runs
from tfp_glow.data import labeled
from tfp_glow.data import splits
from tfp_glow.cli.common import (check_first_batch, check_given_data, evaluate_data, folder_options, load_run,
                                 print_eval, run_data)
from tfp_glow.cli.options import CLIError, say

__all__ = ["run"]


def run(args):
    """Evaluates the run on `args.split` of its data (the same held-out split as in training);
    returns the bits/dim."""
    model, config = load_run(args.run_dir)
    data_name = run_data(config, args.run_dir, args.data)
    if getattr(model, "num_classes", 0):  # log p(x | y) with the split's labels, and the accuracy
        return _evaluate_conditional(args, model, config, data_name)
    try:
        x, info = splits.load_split(data_name, args.split, config.get("val_fraction", splits.DEFAULT_VAL_FRACTION),
                                    config.get("test_fraction", splits.DEFAULT_TEST_FRACTION), args.data_dir,
                                    **folder_options(config, data_name))
        check_given_data(config, info, args.data)
        check_first_batch(model, x, args.split)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        raise CLIError(str(e)) from e
    model.compile(keras.optimizers.Adam(), jit_compile=False if args.no_xla else "auto", ema_decay=model.ema_decay)
    result = evaluate_data(model, x, config.get("eval_batch_size", runs.EVAL_BATCH_SIZE))
    say(f"{args.split} examples: {splits.num_examples(x)} of {data_name}")
    return print_eval(args.split, result, model.is_image)


def _evaluate_conditional(args, model, config, data_name):
    try:
        x, y, info, _ = labeled.load_labeled_split(data_name, args.split,
                                                   config.get("val_fraction", splits.DEFAULT_VAL_FRACTION),
                                                   config.get("test_fraction", splits.DEFAULT_TEST_FRACTION),
                                                   args.data_dir)
        check_given_data(config, info, args.data)
        check_first_batch(model, x, args.split)
        if y is not None:
            model.check_labels(y, len(x), what=f"{args.split} labels")
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        raise CLIError(str(e)) from e
    model.compile(keras.optimizers.Adam(), jit_compile=False if args.no_xla else "auto", ema_decay=model.ema_decay)
    ds = data_lib.make_dataset(labeled.to_dataset(x, y), config.get("eval_batch_size", runs.EVAL_BATCH_SIZE),
                               shuffle=False)
    result = model.evaluate(ds, verbose=0, return_dict=True)
    say(f"{args.split} examples: {splits.num_examples(x)} of {data_name}")
    bpd = print_eval(args.split, result, model.is_image)
    say(f"{args.split} accuracy: {float(result['accuracy']):.4f} (Bayes rule, argmax_y log p(x | y) + log p(y))")
    return bpd
