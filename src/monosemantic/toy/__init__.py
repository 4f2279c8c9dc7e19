"""Toy models of superposition: models batched over instances, and their trainer."""
from monosemantic.toy.models import MODELS, AbsToyModel, TiedToyModel, loss_per_instance, make_model
from monosemantic.toy.train import ToyRun, kept_tensors, train, train_toy

__all__ = ["MODELS", "AbsToyModel", "TiedToyModel", "loss_per_instance", "make_model", "ToyRun",
           "kept_tensors", "train", "train_toy"]
