"""A race trained in the foreground (``resnet-train``) takes the Training page's controls like the app's own.

The page's Pause, Resume, Step and Stop arrive through the run folder's control.jsonl; status.json says paused or
running at each change, so the page shows it.
"""

from __future__ import annotations

import time

from ..train import Race
from .folders import ControlReader, RunWriter
from .jobs import CONTROL_POLL_S


class ForegroundControls:
    """Requests from other processes for a race this process steps itself. Under torchrun only Stop is taken
    (the caller passes it to every rank through its per-step stop agreement): a pause would leave the other ranks
    waiting in a collective."""

    def __init__(self, writer: RunWriter, race: Race) -> None:
        self.writer, self.race = writer, race
        self.reader = ControlReader(writer.path)
        self.paused, self.budget, self.stop = False, 0, False

    def _apply(self) -> None:
        for request in self.reader.new():
            if request == "stop":
                self.stop = True
            elif self.race.dist.enabled:
                continue
            elif request == "pause" and not self.paused:
                self.paused = True
                self.writer.write_status("paused", self.race.step_index)
            elif request == "resume" and self.paused:
                self.paused, self.budget = False, 0
                self.writer.write_status("running", self.race.step_index)
            elif request == "step" and self.paused:
                self.budget += 1

    def may_step(self) -> bool:
        """Before each step: wait while paused (one step per Step request); False when a Stop came while paused
        (a Stop while running ends the race after the step, through :attr:`stop`)."""
        self._apply()
        while self.paused and not self.budget and not self.stop:
            time.sleep(CONTROL_POLL_S)
            self._apply()
        if self.budget:
            self.budget -= 1
        return not (self.paused and self.stop)
