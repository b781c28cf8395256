"""A stand-in for ``torchvision`` so that MultiVae 1.0 imports next to the CPU build of torch 2.13.

MultiVae imports torchvision at module level (image datasets, ``make_grid`` in its
trainer, FID metrics) but none of its tabular paths use it. The torchvision wheels this
machine's index offers (0.28.0, 0.29.x) fail to import with ``torch==2.13.0+cpu``
(``RuntimeError: operator torchvision::nms does not exist``), and letting pip resolve
MultiVae's dependencies would replace torch. ``benchmarks/peers/multivae_adapter.py``
puts this folder on ``sys.path`` only when the real torchvision cannot be imported.
Every name resolves to a placeholder: calling it once (``ToTensor()``, as MultiVae does in
default arguments at import time) gives another placeholder, and calling *that* (applying
the transform, reading a dataset) raises ``ImportError``, so no image path silently runs
without torchvision.
"""

__version__ = "0.0.0+neurovamp-shim"
SHIM = True


class _Missing:
    """A torchvision object that is not available (raises when called or instantiated)."""

    def __init__(self, name: str, made: bool = False) -> None:
        self._name = name
        self._made = made

    def __call__(self, *args, **kwargs):
        if not self._made:
            return _Missing(self._name + "()", made=True)
        raise ImportError(f"torchvision.{self._name} is not available: this is neurovamp's torchvision shim "
                          "(see benchmarks/peers/torchvision_shim/torchvision/__init__.py)")

    def __getattr__(self, item: str):
        return _Missing(f"{self._name}.{item}")


def __getattr__(name: str):
    return _Missing(name)
