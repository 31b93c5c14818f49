"""Tracking over depth sequences: ``Tracker.update(frame) -> FaceTrack`` (after ``pipeline``).

:mod:`.sources` (folders, Biwi sequences, stacked ``.npz``, iterables of frames),
:mod:`.filters` (One-Euro on SE(3)), :mod:`.tracker` (warm start, refinement from the previous
solution, fused identity and the person's face from the fused surface (``IdentityFace``), loss and
recovery); what ``track`` writes is :mod:`facerecon.export.track` (CSV, JSON, identity face, plot).
"""
from .filters import OneEuroParams, SE3OneEuroFilter
from .sources import DepthSequence, SequenceFrame, open_sequence
from .tracker import FaceTrack, IdentityFace, Tracker, track_config

__all__ = ["DepthSequence", "FaceTrack", "IdentityFace", "OneEuroParams", "SE3OneEuroFilter", "SequenceFrame", "Tracker", "open_sequence",
           "track_config"]
