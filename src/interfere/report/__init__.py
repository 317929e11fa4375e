"""The hypothesis report: the command (:mod:`~interfere.report.run`, ``python -m interfere report``), its sections
(:mod:`~interfere.report.sections`), the two processes they run in (:mod:`~interfere.report.processes`), the verdicts
H1-H4 (:mod:`~interfere.report.verdicts`) and the page (:mod:`~interfere.report.page`)."""

from interfere.report.run import main

__all__ = ["main"]
