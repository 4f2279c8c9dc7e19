"""Report sections: each assembles one topic's figures and tables from an experiment's result."""
from monosemantic.report.sections import dictionary, phase, real, road1, toy, transition, unfolding

__all__ = ["dictionary", "phase", "real", "road1", "toy", "transition", "unfolding"]
