"""Tests of neurovamp.data.tensors.TensorBatcher: contents, masks, epochs, device, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from neurovamp.data.modality import make_modality
from neurovamp.data.pairing import pair_trials
from neurovamp.data.tensors import TensorBatcher
from neurovamp.errors import ConfigError

N_BINS = 25


def modality(animal: str, odors, trial_ids, n_units: int, code: int) -> xr.DataArray:
    """Counts encode (animal, trial id, unit, bin): code*1e6 + (id-100)*1e4 + unit*100 + bin."""
    ids = np.asarray(trial_ids)
    t, u, b = np.meshgrid(ids - 100, np.arange(n_units), np.arange(N_BINS), indexing="ij")
    counts = code * 1_000_000 + t * 10_000 + u * 100 + b
    return make_modality(counts.astype(float), animal=animal, bin_size=0.01, window_start=0.25,
                         trial_ids=ids, trial_labels={"odor": np.asarray(odors)})


@pytest.fixture
def tree() -> xr.DataTree:
    """ratA 3 units, odors A-C (8 each); ratB 2 units, A-D (6 each); ratC 4 units, A-B (10 each)."""
    a = modality("ratA", np.repeat(list("ABC"), 8), 100 + np.arange(24), 3, 1)
    b = modality("ratB", np.repeat(list("ABCD"), 6), 200 + np.arange(24), 2, 2)
    c = modality("ratC", np.repeat(list("AB"), 10), 300 + np.arange(20), 4, 3)
    return xr.DataTree.from_dict({m.attrs["animal"]: m.to_dataset() for m in (a, b, c)})


def expected_window(code: int, trial_id: int, n_units: int, start: int, window: int) -> np.ndarray:
    u, b = np.meshgrid(np.arange(n_units), start + np.arange(window), indexing="ij")
    return code * 1_000_000 + (trial_id - 100) * 10_000 + u * 100 + b


@pytest.mark.parametrize("materialize_bytes", [2**30, 0], ids=["table", "strided-view"])
@pytest.mark.parametrize("strategy", ["truncate", "resample"])
def test_sub_window_contents_equal_the_counts(tree, strategy, materialize_bytes):
    paired = pair_trials(tree, strategy=strategy, window=10, stride=3, seed=1)
    batcher = TensorBatcher(paired, "train", materialize_bytes=materialize_bytes)
    assert (batcher._tables is None) == (materialize_bytes == 0)
    xs, mask = batcher.all()
    info = batcher.sample_info()
    assert len(info) == batcher.n_samples == paired.n_pairs("train") * 6
    assert [x.shape for x in xs] == [(batcher.n_samples, d) for d in (30, 20, 40)]
    for m, (animal, units) in enumerate(zip(paired.animals, (3, 2, 4))):
        ids = info[f"trial/{animal}"]
        present = ids.notna().to_numpy()
        np.testing.assert_array_equal(mask[:, m].numpy(), present)
        x = xs[m].numpy().reshape(-1, units, 10)  # (unit, time) row-major
        assert np.all(x[~present] == 0)
        rows = np.flatnonzero(present)
        # vectorised known truth for every observed sample
        u = np.arange(units)[None, :, None]
        b = info["window_start"].to_numpy()[rows, None, None] + np.arange(10)[None, None, :]
        trial = ids.to_numpy()[rows].astype(int)[:, None, None]
        truth = (m + 1) * 1_000_000 + (trial - 100) * 10_000 + u * 100 + b
        np.testing.assert_array_equal(x[rows], truth)
    # one sample spelled out
    first = info.iloc[0]
    np.testing.assert_array_equal(
        xs[0][0].reshape(3, 10).numpy(), expected_window(1, int(first["trial/ratA"]), 3, 0, 10))
    assert info["window_start"].iloc[:6].tolist() == [0, 3, 6, 9, 12, 15]
    np.testing.assert_allclose(info["time"].iloc[:2], [0.30, 0.33])


def test_missing_animals_are_zero_and_masked(tree):
    paired = pair_trials(tree, window=5, stride=5)
    batcher = TensorBatcher(paired, "train")
    info = batcher.sample_info()
    xs, mask = batcher.all()
    d_rows = (info["condition"] == "D").to_numpy().copy()
    assert d_rows.any()
    np.testing.assert_array_equal(mask[d_rows].numpy(), np.tile([False, True, False], (d_rows.sum(), 1)))
    assert torch.all(xs[0][d_rows] == 0) and torch.all(xs[2][d_rows] == 0)
    assert torch.all(xs[1][d_rows] > 0)
    assert info.loc[d_rows, "trial/ratA"].isna().all()
    assert info["trial/ratB"].notna().all()


@pytest.mark.parametrize("batch_size,drop_last", [(7, False), (7, True), (1000, False)])
def test_epoch_visits_every_sample_once(tree, batch_size, drop_last):
    paired = pair_trials(tree, window=10, stride=5)
    batcher = TensorBatcher(paired, "train")
    n = batcher.n_samples
    seen, sizes = [], []
    full_x, full_mask = batcher.all()
    for xs, mask, index in batcher.batches(batch_size, drop_last=drop_last, return_index=True):
        sizes.append(index.numel())
        seen.append(index)
        for x, full in zip(xs, full_x):  # the batch is exactly those samples
            torch.testing.assert_close(x, full[index])
        assert torch.equal(mask, full_mask[index])
    seen = torch.cat(seen)
    assert len(sizes) == batcher.n_batches(batch_size, drop_last=drop_last)
    if drop_last:
        assert seen.numel() == n - n % batch_size and len(set(seen.tolist())) == seen.numel()
    else:
        assert sorted(seen.tolist()) == list(range(n))
        assert all(s == batch_size for s in sizes[:-1])
    assert len(batcher) == n


def test_shuffle_is_reproducible_per_epoch(tree):
    paired = pair_trials(tree, window=10, seed=2)
    batcher = TensorBatcher(paired, "train")

    def order(**kwargs):
        return torch.cat([i for _, _, i in batcher.batches(16, return_index=True, **kwargs)])

    assert torch.equal(order(epoch=0), order(epoch=0))
    assert not torch.equal(order(epoch=0), order(epoch=1))
    assert torch.equal(order(shuffle=False), torch.arange(batcher.n_samples))
    g1, g2 = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    assert torch.equal(order(generator=g1), order(generator=g2))


def test_resample_draws_new_pairs_each_epoch(tree):
    paired = pair_trials(tree, strategy="resample", window=10, stride=5, seed=5)
    batcher = TensorBatcher(paired, "train")
    info0, info1 = batcher.sample_info(epoch=0), batcher.sample_info(epoch=1)
    assert not info0["trial/ratA"].equals(info1["trial/ratA"])
    assert info0["condition"].equals(info1["condition"])  # same condition layout
    for epoch, info in ((0, info0), (1, info1)):
        xs, mask, index = next(iter(batcher.batches(10_000, shuffle=False, epoch=epoch, return_index=True)))
        xa = xs[0].numpy().reshape(-1, 3, 10)
        ids = info["trial/ratA"].to_numpy()
        present = info["trial/ratA"].notna().to_numpy()
        # the batch content follows the epoch's pairs
        np.testing.assert_array_equal(xa[present, 0, 0] // 10_000 - 100, ids[present].astype(int) - 100)
        # every train trial of every animal appears within the epoch
        for animal in paired.animals:
            train = paired.modalities[animal]["trial"].values[paired.trial_split[animal] == "train"]
            assert set(info[f"trial/{animal}"].dropna().astype(int)) == set(train.tolist())
    # deterministic from (seed, epoch)
    again = TensorBatcher(pair_trials(tree, strategy="resample", window=10, stride=5, seed=5), "train")
    assert again.sample_info(epoch=1).equals(info1)
    xs_a, _ = next(iter(again.batches(64, epoch=3)))
    xs_b, _ = next(iter(batcher.batches(64, epoch=3)))
    assert all(torch.equal(p, q) for p, q in zip(xs_a, xs_b))


def test_counts_move_to_the_device_once(tree, monkeypatch):
    paired = pair_trials(tree, window=10)
    batcher = TensorBatcher(paired, "train", device="cpu")
    assert all(t.device.type == "cpu" for t in batcher.tensors)
    assert [tuple(t.shape) for t in batcher.tensors] == [(25, 3, 25), (25, 2, 25), (21, 4, 25)]
    assert all(torch.all(t[-1] == 0) for t in batcher.tensors)  # the zero row for missing animals
    pointers = [t.data_ptr() for t in batcher.tensors]
    moved = []
    original_to = torch.Tensor.to

    def spy(self, *args, **kwargs):
        moved.append(tuple(self.shape))
        return original_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", spy)
    for epoch in range(2):
        for _ in batcher.batches(8, epoch=epoch):
            pass
    batcher.all()
    assert all(len(shape) <= 1 for shape in moved)  # only sample orders, never counts
    assert [t.data_ptr() for t in batcher.tensors] == pointers


def test_dtype_and_empty_split(tree):
    paired = pair_trials(tree, split=(0.8, 0.0, 0.2), window=10)
    empty = TensorBatcher(paired, "val", dtype=torch.float64)
    assert empty.n_samples == 0 and list(empty.batches(4)) == []
    xs, mask = empty.all()
    assert [x.shape for x in xs] == [(0, 30), (0, 20), (0, 40)] and mask.shape == (0, 3)
    assert xs[0].dtype == torch.float64 and len(empty.sample_info()) == 0
    test = TensorBatcher(paired, "test", dtype=torch.float64)
    assert test.all()[0][0].dtype == torch.float64 and test.input_dims == (30, 20, 40)


def test_bad_inputs(tree):
    paired = pair_trials(tree)
    with pytest.raises(ConfigError, match="split"):
        TensorBatcher(paired, "training")
    with pytest.raises(ConfigError, match="PairedData"):
        TensorBatcher(tree, "train")
    with pytest.raises(ConfigError, match="dtype"):
        TensorBatcher(paired, "train", dtype=torch.int64)
    with pytest.raises(ConfigError, match="materialize_bytes"):
        TensorBatcher(paired, "train", materialize_bytes=-1)
    batcher = TensorBatcher(paired, "train")
    with pytest.raises(ConfigError, match="batch_size"):
        batcher.batches(0)
    with pytest.raises(ConfigError, match="epoch"):
        batcher.batches(4, epoch=-1)


def test_for_split_shares_device_memory_and_equals_a_fresh_batcher(tree):
    paired = pair_trials(tree, strategy="resample", window=10, stride=3, seed=1)
    train = TensorBatcher(paired, "train")
    val = train.for_split("val")
    fresh = TensorBatcher(paired, "val")
    assert val.split == "val" and train.split == "train" and val.n_samples == fresh.n_samples
    assert all(a.data_ptr() == b.data_ptr() for a, b in zip(val._tables, train._tables))  # one copy
    for epoch in (0, 3):
        (xs_a, mask_a), (xs_b, mask_b) = val.all(epoch), fresh.all(epoch)
        assert torch.equal(mask_a, mask_b) and all(torch.equal(a, b) for a, b in zip(xs_a, xs_b))
    assert train.all(0)[0][0].shape[0] == train.n_samples  # the original is unchanged
    with pytest.raises(ConfigError, match="split"):
        train.for_split("validation")
