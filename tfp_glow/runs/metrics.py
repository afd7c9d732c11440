"""Upkeep of a run's metrics.csv: one row per epoch, written atomically
(`append_metrics_row`), rows past a restored checkpoint dropped on resume (`reconcile_metrics`).

The columns are `epoch_1based` (the epoch as the console counts it, from 1) and the sorted
log keys. Files written before that column have Keras' 0-based `epoch` (`CSVLogger`'s format);
they are read as well and rewritten in the current format the next time a row is added
(`plots.curves.row_epoch` reads both).
"""
import csv
import io
import os

from tfp_glow.plots.curves import EPOCH_COLUMN, KERAS_EPOCH_COLUMN, row_epoch
from tfp_glow.runs.layout import atomic_write


def read_metrics_rows(path):
    """`(fieldnames, rows)` of a metrics.csv, in the current format (`epoch_1based` first).

    A file of the older format (0-based `epoch`) comes back converted; the file itself is left
    as it is.
    """
    if not os.path.isfile(path):
        return [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = [r for r in reader if row_epoch(r) is not None]
        fieldnames = list(reader.fieldnames or [])
    if EPOCH_COLUMN not in fieldnames and KERAS_EPOCH_COLUMN in fieldnames:  # the older format
        fieldnames = [EPOCH_COLUMN] + [k for k in fieldnames if k != KERAS_EPOCH_COLUMN]
        rows = [{EPOCH_COLUMN: str(row_epoch(r)), **{k: v for k, v in r.items() if k != KERAS_EPOCH_COLUMN}}
                for r in rows]
    return fieldnames, rows


def _row_epoch(row):
    """The 0-based (Keras) epoch index of a row."""
    epoch = row_epoch(row)
    return None if epoch is None else epoch - 1


def _write_metrics(path, fieldnames, rows):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fieldnames, restval="NA", extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buf.getvalue())


def append_metrics_row(path, epoch, logs):
    """Writes the row of Keras' 0-based `epoch` into metrics.csv atomically (the whole file is
    replaced), as epoch `epoch + 1` in the column `epoch_1based`.

    Rows of `epoch` and later (left by a run that died before its checkpoint) are replaced,
    so every epoch has one row. The columns are `epoch_1based` and the sorted log keys.
    """
    fieldnames, rows = read_metrics_rows(path)
    keys = sorted(logs or {})
    if not fieldnames:
        fieldnames = [EPOCH_COLUMN] + keys
    else:
        fieldnames = fieldnames + [k for k in keys if k not in fieldnames]
    rows = [r for r in rows if (_row_epoch(r) is not None and _row_epoch(r) < epoch)]
    row = {EPOCH_COLUMN: epoch + 1}
    for k, v in (logs or {}).items():
        try:
            row[k] = repr(float(v))
        except (TypeError, ValueError):
            row[k] = str(v)
    rows.append(row)
    _write_metrics(path, fieldnames, rows)


def reconcile_metrics(path, epochs_done):
    """Keeps the metrics rows of the `epochs_done` epochs a restored checkpoint completed.

    A run killed after its metrics row but before its checkpoint (or restored from an older
    checkpoint than its newest) has rows past the checkpoint; they are dropped (atomically)
    so that the resumed run writes each epoch's row once, with no gap. Returns the number of
    rows dropped.
    """
    fieldnames, rows = read_metrics_rows(path)
    keep = [r for r in rows if _row_epoch(r) is not None and _row_epoch(r) < epochs_done]
    if len(keep) != len(rows):
        _write_metrics(path, fieldnames, keep)
    return len(rows) - len(keep)
