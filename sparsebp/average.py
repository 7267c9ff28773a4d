"""Weight averaging (`--average DECAY`): evaluate a running average of the weights
instead of the weights themselves.

With Adam at a fixed rate the weights keep jumping around the optimum, and the
parser's dev UAS swings by up to 0.9 from one epoch to the next
(results/parse/README.md). The average of the recent weights sits nearer the
middle of that cloud and scores better and more steadily (there: 1.3 UAS);
training itself is unchanged (the average is only read), so a run with and
without it takes the same steps.

Every `EVERY` optimizer steps the weights are sampled, and the average moves
toward the sample by a = max(1 - decay^EVERY, 1 / n) (the kernel
`moving_average`; n: the samples so far): the plain mean of the first samples,
then an exponential moving average that forgets at the rate of `decay` per step
(a memory of about 1 / (1 - decay) steps). Sampling every 10 steps instead of
every step costs a tenth of the memory traffic and averages the same stretch of
training.
"""
import contextlib

import numpy as np

from .backend import K

EVERY = 10      # optimizer steps between samples of the weights


class WeightAverage:
    """The running average of params (a list of Parameter), one array each.

    update() after each optimizer step; `applied()` puts the average into the
    parameters for the time of a `with` block (an evaluation, a prediction).
    """

    def __init__(self, params, decay, every=EVERY):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"WeightAverage: decay must be in (0, 1), got {decay!r}")
        if every < 1:
            raise ValueError(f"WeightAverage: every must be >= 1, got {every!r}")
        self.params, self.decay, self.every = list(params), float(decay), int(every)
        self.averages = [K().zeros(p.data.shape, p.data.dtype) for p in self.params]
        self.steps = 0

    @property
    def samples(self):
        """How many times the weights have been sampled."""
        return self.steps // self.every

    def update(self):
        """Count one optimizer step; every `every` steps, move the average toward the weights."""
        self.steps += 1
        if self.steps % self.every:
            return
        a = max(1.0 - self.decay ** self.every, 1.0 / self.samples)
        for avg, p in zip(self.averages, self.params):
            K().moving_average(avg, p.data, a)

    @contextlib.contextmanager
    def applied(self):
        """Inside the block the parameters hold the average (the weights themselves
        if nothing was sampled yet); after it, their own weights again, untouched.
        The arrays are swapped, not copied: nothing is rounded on the way back."""
        if self.samples == 0:
            yield
            return
        self._swap()
        try:
            yield
        finally:
            self._swap()

    def _swap(self):
        for i, p in enumerate(self.params):
            p.data, self.averages[i] = self.averages[i], p.data

    def state_dict(self):
        """{"I": host copy of parameter I's average, "steps"}."""
        state = {str(i): np.array(K().to_host(a)) for i, a in enumerate(self.averages)}
        state["steps"] = np.int64(self.steps)
        return state

    def load_state_dict(self, d):
        """Restore `state_dict` (the same parameters in the same order)."""
        want = {str(i) for i in range(len(self.averages))} | {"steps"}
        if set(d) != want:
            raise ValueError(f"WeightAverage.load_state_dict: the state does not fit these parameters: "
                             f"missing {sorted(want - set(d))}, unexpected {sorted(set(d) - want)}")
        for i, a in enumerate(self.averages):
            src = np.asarray(d[str(i)])
            if src.shape != tuple(a.shape):
                raise ValueError(f"WeightAverage.load_state_dict: average {i} has shape {src.shape} "
                                 f"in the state, {tuple(a.shape)} here")
            self.averages[i] = K().to_device(src.astype(a.dtype))
        self.steps = int(d["steps"])
