"""Datasets: a documented folder format for labelled depth frames, and the Biwi database.

* :mod:`.folder`: ``FolderDataset`` (reader) / ``FolderWriter`` (atomic writer) for the
  ``facerecon-depth-folder`` layout (manifest.json + NAME.depth.png|npz + NAME.pose.json ...).
* :mod:`.biwi`: index a Biwi Kinect Head Pose copy, the Group-1 / Group-2 protocols
  (seeded, published split), conversion to the folder format.
"""
from __future__ import annotations

from .biwi import (
    DEFAULT_GROUP2_SEED,
    GROUP1_TEST_SEQUENCES,
    BiwiFrameRef,
    BiwiSplit,
    biwi_protocol,
    convert_biwi_to_folder,
    index_biwi,
    load_biwi_sample,
    split_group1,
    split_group2,
)
from .folder import FORMAT_NAME, FolderDataset, FolderSample, FolderWriter, HeadPose

__all__ = [
    "FORMAT_NAME", "FolderDataset", "FolderSample", "FolderWriter", "HeadPose",
    "DEFAULT_GROUP2_SEED", "GROUP1_TEST_SEQUENCES", "BiwiFrameRef", "BiwiSplit", "biwi_protocol",
    "convert_biwi_to_folder", "index_biwi", "load_biwi_sample", "split_group1", "split_group2",
]
