"""Shim of ``torchvision.utils``: every name is a placeholder that raises when used."""

from torchvision import _Missing


def __getattr__(name: str):
    return _Missing("utils." + name)
