"""Tracking over depth sequences: ``Tracker.update(frame) -> FaceTrack`` (after ``pipeline``).

:mod:`.sources` (folders, Biwi sequences, stacked ``.npz``, iterables of frames),
:mod:`.filters` (One-Euro on SE(3)), :mod:`.tracker` (warm start, refinement from the previous
solution, fused identity, loss and recovery), :mod:`.outputs` (CSV, JSON, identity mesh, plot).
"""
from .filters import OneEuroParams, SE3OneEuroFilter
from .sources import DepthSequence, SequenceFrame, open_sequence
from .tracker import FaceTrack, Tracker, track_config

__all__ = ["DepthSequence", "FaceTrack", "OneEuroParams", "SE3OneEuroFilter", "SequenceFrame", "Tracker", "open_sequence",
           "track_config"]
