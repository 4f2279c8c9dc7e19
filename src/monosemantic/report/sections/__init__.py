"""Report sections: each assembles one topic's figures and tables from an experiment's result."""
from monosemantic.report.sections import dictionary, phase, road1, road2, toy, transition, unfolding

__all__ = ["dictionary", "phase", "road1", "road2", "toy", "transition", "unfolding"]
