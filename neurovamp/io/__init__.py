"""Reading and writing recordings: NWB files and the public five-rat release.

Every public function of the io modules is available here, imported on first use
(pynwb is imported only then)::

    import neurovamp as nv
    counts = nv.io.read_nwb("rat1.nwb", event="odor_onset", window=(0.0, 1.0), bin_size=0.02)

Modules: :mod:`~neurovamp.io.nwb` (NWB files ⇄ modalities, spike binning),
:mod:`~neurovamp.io.recordings` (``load_recordings``: NWB files and saved sets → one
multi-animal set), :mod:`~neurovamp.io.release` (the public release → one NWB file per rat).
"""

from __future__ import annotations

from neurovamp import _lazy_face

_EXPORTS = {
    # nwb
    "read_nwb": "neurovamp.io.nwb",
    "write_nwb": "neurovamp.io.nwb",
    "modality_to_nwb": "neurovamp.io.nwb",
    "bin_spike_times": "neurovamp.io.nwb",
    "counts_to_spike_times": "neurovamp.io.nwb",
    # recordings (NWB files and saved sets → one multi-animal set)
    "load_recordings": "neurovamp.io.recordings",
    "RecordingSettings": "neurovamp.io.settings",
    # release
    "find_release_rats": "neurovamp.io.release",
    "convert_release": "neurovamp.io.release",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = _lazy_face(globals(), _EXPORTS)
