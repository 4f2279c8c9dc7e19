"""Report sections: each assembles one topic's figures and tables from an experiment's result."""
from monosemantic.report.sections import dictionary, phase, real, road1, road2, toy, transition, unfolding
from monosemantic.report.sections import circuits, correlated, diagrams, dynamics, nonuniform
from monosemantic.report.sections import lm

__all__ = ["dictionary", "phase", "real", "road1", "road2", "toy", "transition", "unfolding", "diagrams",
           "dynamics", "nonuniform", "correlated", "circuits", "lm"]
