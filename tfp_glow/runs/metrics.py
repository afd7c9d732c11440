"""Upkeep of a run's metrics.csv (Keras' `CSVLogger` format): one row per epoch, written
atomically (`append_metrics_row`), rows past a restored checkpoint dropped on resume
(`reconcile_metrics`)."""
import csv
import io
import os

from tfp_glow.runs.layout import atomic_write


def read_metrics_rows(path):
    """`(fieldnames, rows)` of a metrics.csv (Keras CSVLogger format; `epoch` 0-based)."""
    if not os.path.isfile(path):
        return [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = [r for r in reader if r.get("epoch") not in (None, "")]
        return list(reader.fieldnames or []), rows


def _row_epoch(row):
    try:
        return int(float(row["epoch"]))
    except (KeyError, TypeError, ValueError):
        return None


def _write_metrics(path, fieldnames, rows):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fieldnames, restval="NA", extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buf.getvalue())


def append_metrics_row(path, epoch, logs):
    """Writes the row of 0-based `epoch` into metrics.csv atomically (the whole file is replaced).

    Rows of `epoch` and later (left by a run that died before its checkpoint) are replaced,
    so every epoch has one row. The columns are `epoch` and the sorted log keys, as Keras'
    `CSVLogger` writes them.
    """
    fieldnames, rows = read_metrics_rows(path)
    keys = sorted(logs or {})
    if not fieldnames:
        fieldnames = ["epoch"] + keys
    else:
        fieldnames = fieldnames + [k for k in keys if k not in fieldnames]
    rows = [r for r in rows if (_row_epoch(r) is not None and _row_epoch(r) < epoch)]
    row = {"epoch": epoch}
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
