"""Ctrl-C and SIGTERM: a command's KeyboardInterrupt, and training's stop after the current step."""
import signal
import sys
import threading

from .errors import DCGANError


def _in_main_thread():
    return threading.current_thread() is threading.main_thread()


class TrainingInterrupted(DCGANError):
    """SIGINT or SIGTERM arrived; the step in flight finished and a checkpoint was written."""

    def __init__(self, message, signum):
        super().__init__(message)
        self.signum = signum


class KeyboardInterrupts:
    """A command's SIGINT: KeyboardInterrupt, as Python's own handler, but remembered. Python
    prints and drops an exception raised inside a __del__ (MXNet frees its arrays in them), and
    the command would run on; StopOnSignal asks `KeyboardInterrupts.signum` whether one came."""
    signum = None

    def __enter__(self):
        KeyboardInterrupts.signum = None
        self.installed = _in_main_thread()
        if self.installed:
            self.previous = signal.signal(signal.SIGINT, self._handle)
            self.hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
        return self

    def _handle(self, signum, frame):
        KeyboardInterrupts.signum = signum
        raise KeyboardInterrupt

    def _unraisable(self, info):
        if not issubclass(info.exc_type, KeyboardInterrupt):  # that one is remembered: no traceback
            self.hook(info)

    def __exit__(self, *exc):
        KeyboardInterrupts.signum = None
        if self.installed:  # None: the handler before was C's, which Python cannot put back
            previous = signal.default_int_handler if self.previous is None else self.previous
            signal.signal(signal.SIGINT, previous)
            sys.unraisablehook = self.hook


class StopOnSignal:
    """Turns the first SIGINT/SIGTERM into a request to stop after the current step; a second
    one interrupts at once, for a user who really means it."""

    def __init__(self, enabled):
        self.enabled = enabled and _in_main_thread()
        self.signum = None
        self.previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(f'\n{signal.Signals(signum).name}: stopping after this step...', file=sys.stderr)

    def __enter__(self):
        if self.enabled:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
            if KeyboardInterrupts.signum is not None:  # before this handler, and dropped
                self.__exit__()
                raise KeyboardInterrupt
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
