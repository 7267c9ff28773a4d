"""Timing around the arithmetic: the paper's "backprop time" measured from outside.

A layer's backward is the method and nothing else; this helper wraps the
backward of any module the same way (Linear, LSTM, ...), so the training loop
can report the seconds spent in the meProp layers apart from the rest:

    with BackwardTimer(layers) as timer:
        ... train ...
    timer.seconds
"""
import time

from .backend import synchronize


class BackwardTimer:
    """Sums the wall-clock seconds spent in the `backward` of the given modules
    while the `with` block runs.

    Each module's `backward` is wrapped on the instance (the class is untouched)
    and restored when the block ends. The wrapper waits for queued GPU work
    before and after the call, so on a GPU the time is that layer's work alone.
    """

    def __init__(self, modules):
        self.modules = list(modules)
        self.seconds = 0.0
        self._saved = []

    def __enter__(self):
        for m in self.modules:
            self._saved.append(vars(m).get("backward"))   # an outer timer's wrapper, or None
            m.backward = self._timed(m.backward)
        return self

    def __exit__(self, *exc):
        for m, saved in zip(self.modules, self._saved):
            if saved is None:
                del m.backward
            else:
                m.backward = saved
        self._saved = []

    def _timed(self, backward):
        def timed(*args, **kwargs):
            synchronize()
            t0 = time.perf_counter()
            out = backward(*args, **kwargs)
            synchronize()
            self.seconds += time.perf_counter() - t0
            return out
        return timed
