"""The clock the report shows times on: the method's, as the progress lines, the experiment's
`at:` and the failure messages count (chaos.timeline.method_time), so `at: 2s` is drawn at x=2
and written `t+2.00s`.

The journal, History and the verdicts' windows stay on the run's clock (verdicts are re-judged
from them); only what is drawn or written is shifted, here, at display time. A run that never
reached its method has no method clock: its times stay on the run's, and the axis says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from chaos.checkers.history import History
from chaos.timeline import method_time

METHOD_AXIS = "seconds from the method's start (t+0: the experiment's at: 0s)"
RUN_AXIS = "seconds since the run began (the run never reached its method: no method clock)"


@dataclass(frozen=True)
class ReportClock:
    """Turns a run-clock time into an x value and into words."""

    method_start: float | None  # the run's clock at the method's start (t+0); None: never reached

    @classmethod
    def of(cls, history: History) -> ReportClock:
        return cls(history.method_start)

    @property
    def on_method(self) -> bool:
        return self.method_start is not None

    def x(self, t: float) -> float:
        """Where a run-clock time is drawn."""
        return t - self.method_start if self.method_start is not None else t

    def at(self, t: float) -> str:
        """`t+2.00s`, as every message writes it; without a method clock `3.20s into the run` (the
        page says once that the run never reached its method)."""
        if self.method_start is None:
            return f"{t:.2f}s into the run"
        return method_time(t, self.method_start)

    def span(self, start: float, end: float) -> str:
        """`from t+2.00s to t+10.00s`; without a method clock, `from 0.50s to 3.00s into the run`."""
        if self.method_start is None:
            return f"from {start:.2f}s to {end:.2f}s into the run"
        return f"from {method_time(start, self.method_start)} to {method_time(end, self.method_start)}"

    @property
    def axis_title(self) -> str:
        return METHOD_AXIS if self.on_method else RUN_AXIS

    @property
    def hover_x(self) -> str:
        """The x value in a Plotly hovertemplate, written as `at` writes a time."""
        return "t%{x:+.2f}s" if self.on_method else "%{x:.2f}s into the run"
