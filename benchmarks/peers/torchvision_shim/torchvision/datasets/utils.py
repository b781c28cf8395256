"""Shim of ``torchvision.datasets.utils``: every name is a placeholder that raises when used."""

from torchvision import _Missing


def __getattr__(name: str):
    return _Missing("datasets.utils." + name)
