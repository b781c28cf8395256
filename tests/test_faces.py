"""The package faces: ``neurovamp``, ``neurovamp.io``, ``neurovamp.data``, ``neurovamp.analysis``, ``neurovamp.pipelines``.

Each exports its public names lazily: every name resolves to the object of the module it
names, ``dir()`` lists them, importing a face imports no heavy library, and no face name
is also a submodule's name (which would change meaning once the submodule is imported).
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import pytest

FACES = ("neurovamp", "neurovamp.io", "neurovamp.data", "neurovamp.analysis", "neurovamp.pipelines")
HEAVY = ("torch", "matplotlib", "sklearn", "pynwb", "scipy", "xarray", "pandas")


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (nothing imported yet) and return its stdout."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def targets(face: str) -> dict[str, tuple[str, str]]:
    """Public name → (module, attribute) of a face."""
    exports = importlib.import_module(face)._EXPORTS
    out = {}
    for name, target in exports.items():
        module, _, attribute = target.partition(":")
        out[name] = (module, attribute or name)
    return out


@pytest.mark.parametrize("face", FACES)
def test_every_exported_name_resolves_to_its_modules_public_object(face):
    package = importlib.import_module(face)
    assert set(package.__all__) - {"__version__"} == set(targets(face))
    for name, (module_name, attribute) in targets(face).items():
        module = importlib.import_module(module_name)
        assert attribute in module.__all__, f"{face}.{name}: {module_name}.{attribute} is not public"
        assert getattr(package, name) is getattr(module, attribute), name
        assert callable(getattr(package, name)), name


def submodules(face: str, *, private: bool = False) -> set[str]:
    return {info.name for info in pkgutil.iter_modules(importlib.import_module(face).__path__)
            if private or not info.name.startswith("_")}


@pytest.mark.parametrize("face", FACES)
def test_dir_lists_the_exported_names_and_the_submodules(face):
    package = importlib.import_module(face)
    assert dir(package) == sorted({*package.__all__, *submodules(face)})
    assert "read_nwb" in dir(importlib.import_module("neurovamp.io")) and "analysis" in dir(importlib.import_module("neurovamp"))
    assert "__main__" not in dir(package) and "_files" not in dir(package)


@pytest.mark.parametrize("face", FACES[1:])
def test_a_floors_face_shows_its_own_floor_only(face):
    assert all(module.startswith(face + ".") for module, _ in targets(face).values())


@pytest.mark.parametrize("face", FACES)
def test_no_face_name_is_a_submodule_name(face):
    package = importlib.import_module(face)
    assert submodules(face), face
    assert set(package.__all__) & submodules(face, private=True) == set()


@pytest.mark.parametrize("face", FACES)
def test_an_unknown_name_is_an_attribute_error(face):
    package = importlib.import_module(face)
    with pytest.raises(AttributeError, match=f"module '{face}' has no attribute 'no_such_name'"):
        package.no_such_name  # noqa: B018
    assert not hasattr(package, "no_such_name")


def test_importing_the_faces_imports_no_heavy_library():
    found = json.loads(run_python(
        "import sys, json\n"
        "import neurovamp, neurovamp.io, neurovamp.data, neurovamp.analysis, neurovamp.pipelines\n"
        f"heavy = [m for m in {list(HEAVY)!r} if m in sys.modules]\n"
        "import neurovamp as nv\n"
        # a face name, or a floor reached as an attribute, imports what it needs on first use
        "nv.load_dataset\n"
        "xarray = 'xarray' in sys.modules\n"
        "nv.analysis.bits_per_spike, nv.io.read_nwb, nv.analysis.plots.plot_latents\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('neurovamp.'))\n"
        "print(json.dumps({'heavy': heavy, 'xarray': xarray, 'loaded': loaded}))\n"
    ))
    assert found["heavy"] == [] and found["xarray"] is True
    loaded = set(found["loaded"])
    assert {"neurovamp.analysis.metrics", "neurovamp.io.nwb", "neurovamp.analysis.plots"} <= loaded
    assert not {m for m in loaded if m.startswith(("neurovamp.models", "neurovamp.analysis.evaluate"))}


def test_the_imputation_function_and_module_keep_their_names_in_any_import_order():
    checks = (
        "import neurovamp.analysis.impute as module\n"
        "assert nv.analysis.impute is module and nv.impute_rates is module.impute\n"
        "assert nv.analysis.impute_rates is module.impute\n"
        "from neurovamp.analysis.impute import impute, impute_condition_mean\n"
        "assert impute is nv.impute_rates and impute_condition_mean is nv.impute_condition_mean\n"
        "print('ok')\n"
    )
    face_first = "import neurovamp as nv\nnv.analysis.impute_rates\n" + checks
    module_first = "import neurovamp.analysis.impute\nimport neurovamp as nv\n" + checks
    assert run_python(face_first).strip() == "ok"
    assert run_python(module_first).strip() == "ok"


def test_star_import_of_a_face_gives_its_names():
    namespace: dict = {}
    exec("from neurovamp.analysis import *", namespace)  # noqa: S102
    import neurovamp.analysis as analysis

    assert {name for name in namespace if not name.startswith("__")} == set(analysis.__all__)
