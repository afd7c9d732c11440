"""`RunLock`: one writer per run directory (an `fcntl.flock` on `RUN_DIR/.lock`)."""
import errno
import os
import socket
import time

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: RunLock is a no-op
    fcntl = None

from tfp_glow.runs.layout import LOCK, RunError


class RunLock:
    """An exclusive lock on a run directory: one writer at a time.

    `fcntl.flock` on `RUN_DIR/.lock`, which records the holder's pid, host and start time for
    the message a second writer gets. The kernel releases the lock when the holder's process
    ends in any way (kill -9 included), so a stale `.lock` file never blocks. Without `fcntl`
    (Windows) the lock is a no-op.

    Raises (`acquire`):
      RunError: another process holds the lock, or the folder cannot be written.
    """

    def __init__(self, run_dir):
        self.run_dir = os.fspath(run_dir)
        self.path = os.path.join(self.run_dir, LOCK)
        self._fd = None

    def acquire(self):
        if fcntl is None:  # pragma: no cover - not POSIX
            return self
        for _ in range(10):  # retried only if the holder deleted the file as we locked it
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = ""
                try:
                    holder = os.pread(fd, 256, 0).decode(errors="replace").strip()
                except OSError:
                    pass
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    who = f" ({holder})" if holder else ""
                    raise RunError(f"the run directory {self.run_dir!r} is in use by another tfp-glow train{who}; "
                                   f"wait for it to finish, or choose another --run-dir.") from e
                raise RunError(f"cannot lock the run directory {self.run_dir!r}: {e.strerror or e}") from e
            if self._same_file(fd):
                break
            os.close(fd)
        else:  # pragma: no cover - ten holders in a row deleted the file under us
            raise RunError(f"cannot lock the run directory {self.run_dir!r}: its {LOCK} keeps changing.")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}, "
                          f"since {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode(), 0)
        except OSError:
            pass  # the lock holds; only the holder's description is missing
        self._fd = fd
        return self

    def _open(self):
        try:
            os.makedirs(self.run_dir, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise RunError(f"cannot write to the run directory {self.run_dir!r}: {e.strerror or e}") from e

    def _same_file(self, fd):
        """Whether `.lock` is still the file we locked (a releasing holder deletes it)."""
        try:
            a, b = os.fstat(fd), os.stat(self.path)
        except OSError:
            return False
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    def release(self):
        """Deletes `.lock` and unlocks (in this order, so a waiting writer never locks a
        deleted file without noticing: it checks the path still names what it locked)."""
        if self._fd is not None:
            try:
                try:
                    os.remove(self.path)
                except OSError:
                    pass
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    @staticmethod
    def busy(run_dir):
        """Whether another process holds the lock of `run_dir` now (a `tfp-glow train` writing it)."""
        path = os.path.join(os.fspath(run_dir), LOCK)
        if fcntl is None or not os.path.exists(path):
            return False
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # (closing drops the probe's lock)
        return False

    @property
    def held(self):
        return self._fd is not None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
