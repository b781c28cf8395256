"""Thread limits for CPU work: one context manager used by every pipeline (torch imported on use)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["thread_limits"]


@contextlib.contextmanager
def thread_limits(threads: int | None, *, blas: bool = True) -> Iterator[None]:
    """Limit torch (and BLAS/OpenMP) threads to ``threads`` inside the block, restored afterwards.

    Small networks on a CPU spend more time synchronising threads than computing, and on a
    busy machine several threads are slower than one; the demo trains on one thread, the
    paper run on ``--threads``.

    Parameters
    ----------
    threads
        The limit (``None``: no limit, the block runs as it would without this manager).
    blas
        Also limit the BLAS/OpenMP pools of numpy, scipy and scikit-learn (threadpoolctl).

    Yields
    ------
    None
    """
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        if blas:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=int(threads)):
                yield
        else:
            yield
    finally:
        torch.set_num_threads(before)
