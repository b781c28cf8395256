"""How the frozen neurovamp 0.1 files in ``tests/legacy/v0.1/`` were made.

Run once, with neurovamp 0.1 (main at the commit recorded in ``v0.1/manifest.json``)::

    export PYTHONPATH=$PWD OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
    python tests/legacy/make_v0_1.py            # refuses to replace an existing v0.1/
    python tests/legacy/make_v0_1.py --add extra  # adds demo/ and paper/ to v0.1/

The ``extra`` part was added in a second run, with ``PYTHONPATH`` pointing at an
unmodified export of the same commit (``git archive <commit> | tar -x -C /tmp/nv01``).

**Never rerun it to "update" the fixtures**: their whole point is that they were written
by the old code. A new format version gets a new folder (``v0.2/`` made by a
``make_v0_2.py``); the old folder stays as it is. The tests (``tests/test_legacy.py``)
only read copies of these files and never run this script.

Everything is made in a temporary folder and copied in at the end, so the absolute data
paths that ``run.json`` records (``data.paths``) point to a folder that no longer exists,
as they do once a user moves their data. The tests re-point them the way a user can:
by editing ``data.paths`` in the copied ``run.json``.

What is made (``v0.1/``)::

    data/rat{1,2}.nwb, data/simulation.json
                         a tiny simulated experiment (2 rats, 6/8 units, 24/26 trials, rat2
                         never smells odor E), written by neurovamp.simulate.write_simulation
                         (two rats, not three: each NWB file is ~215 kB, mostly the cached
                         NWB schema, and the fixtures stay well under 1 MB)
    dataset.nc           save_dataset(load_recordings(data/*.nwb, **DATASET)), NetCDF
                         format_version 1
    model/               MultiAnimalModel.save of a 2-epoch MMVM fitted on dataset.nc
    model_outputs.npz    that model's latent means of each animal on dataset.nc
                         (``latents/<animal>``) and the expected counts of rat2 generated
                         from rat1's trials (``generate/rat1->rat2``)
    run/                 `neurovamp fit data/*.nwb --out run FIT_ARGS` (4 epochs,
                         checkpoint every epoch), then `neurovamp evaluate run --no-figures`
                         (run/metrics.json, format neurovamp-metrics v1)
    run_outputs.npz      latents of the run's model on its own paired data (load_run)
    impute_rat2_E.nc     `neurovamp impute run --target rat2 --condition odor=E --out ...`
    run_interrupted/     the same fit as run/, interrupted (KeyboardInterrupt, as Ctrl-C)
                         at the start of epoch 3: status "interrupted", checkpoint of epoch 2
    demo/                the top-level files of `neurovamp demo --quick --models mmvm`
                         (demo.json, format neurovamp-demo v1, status complete;
                         metrics.json, comparison.csv, report.md); its runs/ (ordinary run
                         folders, covered by run/) and figures/ are left out for size
    paper/               the files of `neurovamp paper` on the small stand-in release of
                         tests/test_paper.py (one model, one seed, 2 epochs): paper.json
                         (neurovamp-paper-run v1), metrics.json (neurovamp-paper-metrics v1),
                         report.md, fits/paper/mmvm/seed0/fit.json; nwb/ (five ~215 kB
                         NWB files), figures/ and latents.nc are left out for size
    manifest.json        the commands and settings above, versions, the commit

``ground_truth.npz`` of the simulation is left out (160 kB of fine-grained truth no
fixture test needs).
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEST = HERE / "v0.1"

#: The tiny simulated experiment.
SIMULATION = dict(seed=5, n_rats=2, n_units=(6, 8), n_trials=(24, 26), missing={"rat2": ["E"]}, window=(-0.2, 0.6), iti=(0.5, 1.0),
                  sequence_gap=0.5)
#: How the NWB files are binned (for dataset.nc and for the fit).
DATASET = dict(event="odor_onset", window=(0.0, 0.4), bin_size=0.05, labels=["odor", "position", "correct"])
#: ``neurovamp fit`` options after the paths and ``--out``.
FIT_ARGS = [
    "--event", "odor_onset", "--window", "0", "0.4", "--bin", "0.05", "--label", "odor", "position", "correct",
    "--pair-by", "odor", "--subwindow", "4", "--stride", "2", "--latent-dim", "2", "--hidden", "8",
    "--batch-size", "32", "--epochs", "4", "--checkpoint-every", "1", "--seed", "1", "--device", "cpu",
    "--no-progress",
]
INTERRUPT_AT_EPOCH = 3
IMPUTE_ARGS = ["--target", "rat2", "--condition", "odor=E", "--seed", "0"]
EVALUATE_ARGS = ["--no-figures", "--seed", "0"]
#: The standalone model (Python API, fitted on dataset.nc).
MODEL = dict(latent_dim=2, hidden=[8])
MODEL_PAIRING = dict(by="odor", window=4, stride=2, seed=0)
MODEL_FIT = dict(epochs=2, batch_size=32, progress=False)


def _cli(*argv: str) -> None:
    subprocess.run([sys.executable, "-m", "neurovamp", *argv], check=True)


def _interrupted_fit(nwb: list[str], out: Path) -> None:
    """``neurovamp fit`` stopped by a KeyboardInterrupt at the start of INTERRUPT_AT_EPOCH."""
    from neurovamp.cli import main
    from neurovamp.models.training import Trainer

    original = Trainer._run_epoch

    def stop(self, epoch, bar):
        if epoch == INTERRUPT_AT_EPOCH:
            raise KeyboardInterrupt
        return original(self, epoch, bar)

    Trainer._run_epoch = stop
    try:
        status = main(["fit", *nwb, "--out", str(out), *FIT_ARGS])
    finally:
        Trainer._run_epoch = original
    assert status == 130, status


def make(work: Path) -> None:
    import numpy as np
    import torch

    import neurovamp
    from neurovamp.data.dataset import animals, get_modality, load_recordings, save_dataset
    from neurovamp.data.pairing import pair_trials
    from neurovamp.models.config import ModelConfig
    from neurovamp.models.estimator import MultiAnimalModel
    from neurovamp.pipelines.fit import load_run
    from neurovamp.simulate import SimulationConfig, simulate_experiment, write_simulation

    torch.set_num_threads(1)
    written = write_simulation(simulate_experiment(SimulationConfig.small(**SIMULATION)), work / "data")
    (work / "data" / "ground_truth.npz").unlink()
    nwb = [str(p) for p in written["nwb"].values()]

    tree = load_recordings(nwb, **DATASET)
    save_dataset(tree, work / "dataset.nc")
    paired = pair_trials(tree, **MODEL_PAIRING)
    model = MultiAnimalModel(config=ModelConfig(**MODEL), seed=0, device="cpu").fit(paired, **MODEL_FIT)
    model.save(work / "model")
    outputs = {f"latents/{a}": model.latents(get_modality(tree, a)).values for a in animals(tree)}
    outputs["generate/rat1->rat2"] = model.generate(get_modality(tree, "rat1"), "rat1", "rat2").values
    np.savez(work / "model_outputs.npz", **outputs)

    _cli("fit", *nwb, "--out", str(work / "run"), *FIT_ARGS)
    _cli("evaluate", str(work / "run"), *EVALUATE_ARGS)
    _cli("impute", str(work / "run"), *IMPUTE_ARGS, "--out", str(work / "impute_rat2_E.nc"))
    run_model, run_paired, _ = load_run(work / "run", device="cpu")
    np.savez(work / "run_outputs.npz",
             **{f"latents/{a}": run_model.latents(run_paired, a).values for a in run_paired.animals})
    _interrupted_fit(nwb, work / "run_interrupted")

    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True).stdout.strip()
    manifest = {
        "made_by": "tests/legacy/make_v0_1.py",
        "neurovamp_version": neurovamp.__version__,
        "commit": commit,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "data": [f"data/{Path(p).name}" for p in nwb],
        "original_data_dir": str(work / "data"),
        "simulation": SIMULATION,
        "dataset": DATASET,
        "fit_args": FIT_ARGS,
        "interrupt_at_epoch": INTERRUPT_AT_EPOCH,
        "evaluate_args": EVALUATE_ARGS,
        "impute_args": IMPUTE_ARGS,
        "model": MODEL,
        "model_pairing": MODEL_PAIRING,
        "model_fit": MODEL_FIT,
    }
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


DEMO_ARGS = ["--quick", "--models", "mmvm", "--device", "cpu", "--no-progress"]
PAPER_ARGS = ["--models", "mmvm", "--seeds", "0", "--no-defaults", "--epochs", "2", "--folds", "2", "--threads", "1",
              "--no-progress"]
#: What of the demo and paper folders is kept (the rest is large and covered elsewhere).
DEMO_KEEP = ("demo.json", "metrics.json", "comparison.csv", "report.md")
PAPER_KEEP = ("paper.json", "metrics.json", "report.md", "fits/paper/mmvm/seed0/fit.json")


def make_extra(work: Path) -> dict:
    """demo/ and paper/: the versioned files of the two end-to-end pipelines."""
    import os

    sys.path.insert(0, str(HERE.parent))
    from test_paper import make_release  # the small stand-in release of the paper tests

    env = {**os.environ, "NEUROVAMP_DATA": str(work / "cache")}
    subprocess.run([sys.executable, "-m", "neurovamp", "demo", "--out", str(work / "demo_full"), *DEMO_ARGS],
                   check=True, env=env)
    release = make_release(work / "release")
    _cli("paper", str(release), "--out", str(work / "paper_full"), *PAPER_ARGS)
    for name, keep in (("demo", DEMO_KEEP), ("paper", PAPER_KEEP)):
        for item in keep:
            target = work / "extra" / name / item
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(work / f"{name}_full" / item, target)
    return {"demo_args": DEMO_ARGS, "demo_files": list(DEMO_KEEP), "paper_args": PAPER_ARGS,
            "paper_release": "tests/test_paper.py make_release(root) (seed 0)", "paper_files": list(PAPER_KEEP)}


def add_extra() -> None:
    manifest = json.loads((DEST / "manifest.json").read_text())
    if (DEST / "demo").exists() or (DEST / "paper").exists():
        sys.exit(f"{DEST}/demo or paper exists; frozen fixtures are never remade")
    import neurovamp

    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="neurovamp-v0.1-") as tmp:
        work = Path(tmp)
        extra = make_extra(work)
        for name in ("demo", "paper"):
            shutil.copytree(work / "extra" / name, DEST / name)
    manifest["extra"] = {**extra, "neurovamp_version": neurovamp.__version__, "neurovamp_file": neurovamp.__file__,
                         "commit_of_the_checkout_running_this": commit}
    (DEST / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"added demo/ and paper/ to {DEST}")


def main() -> None:
    if sys.argv[1:] == ["--add", "extra"]:
        add_extra()
        return
    if DEST.exists():
        sys.exit(f"{DEST} exists; frozen fixtures are never remade (see the docstring)")
    with tempfile.TemporaryDirectory(prefix="neurovamp-v0.1-") as tmp:
        work = Path(tmp) / "v0.1"
        work.mkdir()
        make(work)
        shutil.copytree(work, DEST)
    print(f"wrote {DEST}")


if __name__ == "__main__":
    main()
