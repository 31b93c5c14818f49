"""Checks of the batch commands' options, done before any model loads: a value the command
cannot take is a usage error (``UsageError``: one line, exit code 2; docs/reliability.md).
Light imports only (no numpy, no torch), so the answer comes in well under a second."""
from __future__ import annotations

from ..errors import ConfigError, UsageError

METHODS = ("network", "fit", "photo", "rgbd", "photo-depth")
MESH_FORMATS = ("obj", "ply", "glb")  # facerecon.export.MESH_FORMATS (tests/test_cli_batch.py checks they agree)
DEFAULT_FORMATS = "obj,glb"  # glb: the rig that `facerecon view` and `facerecon animate` take
OUTPUTS = ("minimal", "default", "all")
UNITS = ("mm", "m")


def formats(text: str) -> tuple[str, ...]:
    """``--format obj,glb`` as a tuple; an unknown or empty list is a usage error."""
    fmts = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    bad = [f for f in fmts if f not in MESH_FORMATS]
    if bad or not fmts:
        raise UsageError(f"--format: {'unknown ' + ', '.join(bad) if bad else 'no format given'}; choose from {', '.join(MESH_FORMATS)}")
    return fmts


def method(name: str) -> str:
    if name not in METHODS:
        raise UsageError(f"--method: unknown {name!r}; choose {', '.join(METHODS[:-1])} or {METHODS[-1]}")
    return name


def outputs(name: str) -> str:
    if name not in OUTPUTS:
        raise UsageError(f"--outputs: unknown {name!r}; choose {', '.join(OUTPUTS)}")
    return name


def unit(name: str | None) -> str | None:
    if name is not None and name.lower() not in UNITS:
        raise UsageError(f"--unit must be one of {', '.join(UNITS)}, got {name!r}")
    return None if name is None else name.lower()


def camera(name: str | None, intrinsics: str | None) -> None:
    """``--camera`` names a preset; ``--camera`` and ``--intrinsics`` exclude each other."""
    if name and intrinsics:
        raise UsageError("give either --camera or --intrinsics, not both")
    if name:
        from ..geometry.camera import camera_preset

        try:
            camera_preset(name)
        except ConfigError as exc:
            raise UsageError(exc.one_line()) from None


DETAIL = ("on", "off")


def detail(name: str) -> bool:
    """``--detail on|off``: the out-of-span correction of the returned surface."""
    if name.lower() not in DETAIL:
        raise UsageError(f"--detail: unknown {name!r}; choose on or off")
    return name.lower() == "on"


def rig(name: str) -> str:
    """``--rig``: the GLB's morph targets (``export.rig``)."""
    from ..export.rig import check_rig

    try:
        return check_rig(name)
    except ConfigError as exc:
        raise UsageError(exc.one_line()) from None


def sets(items: list[str], resource: str, where: str) -> dict:
    """``--set section.key=value`` items checked against ``resource`` (keys and value types)."""
    from ..settings import check_overrides, parse_sets

    try:
        overrides = parse_sets(items, resource)
        check_overrides(overrides, resource, where)
    except UsageError:
        raise
    except ConfigError as exc:
        raise UsageError(exc.one_line()) from None
    return overrides


class OutputPlan:
    """What ``--outputs`` writes per face: ``minimal`` = one mesh (face.glb, else the first
    ``--format``) + pose.json; ``default`` = the camera-frame meshes (and, with the out-of-span
    correction on, the model fit alone: face_model.*, and the detail maps) + pose.json, landmarks.json and overlay.png; ``all`` = also the head-frame meshes (face_head.*, which ``eval shape`` reads)."""

    def __init__(self, level: str, fmts: tuple[str, ...], overlay: bool, rig: str | None = None):
        self.level = outputs(level)
        self.rig = rig  # GLB morph targets (export.rig: arkit52 | ict; None: the default)
        self.formats = (("glb",) if "glb" in fmts else fmts[:1]) if level == "minimal" else fmts
        self.head_frame = level == "all"
        self.overlay = overlay and level != "minimal"
        self.landmarks = level != "minimal"
        self.model_surface = level != "minimal"  # face_model.* beside the corrected face.* (detail on)
        # the detail maps (face_displacement.png, face_normal.png, the GLB's normal texture; detail on): ~0.5-1 MB
        # and ~30 ms of the writer thread a frame, so not in minimal (one mesh and pose.json)
        self.maps = level != "minimal"

