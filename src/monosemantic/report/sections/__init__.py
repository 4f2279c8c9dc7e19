"""Report sections: each assembles one topic's figures and tables from an experiment's result."""
from monosemantic.report.sections import dictionary, phase, road1, toy, transition, unfolding
from monosemantic.report.sections import correlated, diagrams, dynamics, nonuniform
from monosemantic.report.sections import circuits

__all__ = ["dictionary", "phase", "road1", "toy", "transition", "unfolding", "diagrams", "dynamics", "nonuniform", "correlated"]
__all__ += ["circuits"]
