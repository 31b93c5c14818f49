"""Which morph targets a rigged GLB carries: ``arkit52`` (default) or ``ict``.

* ``arkit52``: exactly Apple ARKit's 52 blendshapes, by ARKit's names and in ARKit's order, the
  names MediaPipe's face blendshapes and the three.js / Unity / Unreal apps built on ARKit or
  MediaPipe set. Made from ICT-FaceKit's shapes by the one table ``facerecon/data/arkit52.json``:
  ``browInnerUp`` = ICT's ``browInnerUp_L`` + ``browInnerUp_R`` (displacements summed), ``cheekPuff``
  likewise, ``tongueOut`` a zero-displacement target (ICT has no tongue shape), ICT's two pupil
  shapes dropped. A reconstruction's ICT weights become target weights by the table's mean (the
  two sides of ``browInnerUp`` average into its one weight).
* ``ict``: ICT's 55 shapes as they are (53 ARKit-style, ``browInnerUp`` and ``cheekPuff`` split
  left/right, no ``tongueOut``, plus ``pupilDilateLeft/Right``), named ``eyeBlink_L`` ->
  ``eyeBlinkLeft``.

The exporter (:mod:`.gltf`) and the retargeter (:mod:`.animation`) both read the table here.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from importlib import resources

import numpy as np

RIGS = ("arkit52", "ict")
# arkit52 by default: a GLB is for animating, and the drivers (ARKit, MediaPipe, Live Link) set
# morph targets by ARKit's 52 names; `--rig ict` keeps ICT's 55 split shapes.
DEFAULT_RIG = "arkit52"
# The rig write_face_meshes uses when its caller names none (set for a whole command by use_rig).
_CURRENT_RIG: ContextVar[str] = ContextVar("facerecon_rig", default=DEFAULT_RIG)


def check_rig(rig: str) -> str:
    """``rig`` lower-cased, or a one-line :class:`ConfigError`."""
    from ..errors import ConfigError

    r = str(rig).strip().lower()
    if r not in RIGS:
        raise ConfigError(f"--rig: unknown {rig!r}; choose {' or '.join(RIGS)}")
    return r


def current_rig() -> str:
    return _CURRENT_RIG.get()


@contextmanager
def use_rig(rig: str):
    """The default rig of every GLB written inside the block (for writers that take no ``rig``)."""
    token = _CURRENT_RIG.set(check_rig(rig))
    try:
        yield
    finally:
        _CURRENT_RIG.reset(token)


@lru_cache(maxsize=1)
def arkit52_table() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``((arkit_name, (ict_name, ...)), ...)``: the 52 targets in ARKit's order and their ICT shapes."""
    doc = json.loads(resources.files("facerecon").joinpath("data/arkit52.json").read_text(encoding="utf-8"))
    table = tuple((t["name"], tuple(t["ict"])) for t in doc["targets"])
    assert len(table) == 52 and len({n for n, _ in table}) == 52, "data/arkit52.json must list 52 distinct names"
    return table


def arkit52_names() -> list[str]:
    """ARKit's 52 blendshape names in ARKit's order."""
    return [n for n, _ in arkit52_table()]


def ict_target_name(ict_name: str) -> str:
    """ICT ``eyeBlink_L`` -> ``eyeBlinkLeft``; ``jawOpen`` stays; ``PupilDilate_L`` -> ``pupilDilateLeft``."""
    base = ict_name
    if ict_name.endswith("_L"):
        base = ict_name[:-2] + "Left"
    elif ict_name.endswith("_R"):
        base = ict_name[:-2] + "Right"
    return base[:1].lower() + base[1:]


def rig_targets(rig: str, ict_names: list[str]) -> tuple[list[str], list[list[int]]]:
    """(target names, per target the indices of the ICT shapes it sums) of ``rig`` over a model's expressions."""
    rig = check_rig(rig)
    if rig == "ict":
        return [ict_target_name(n) for n in ict_names], [[i] for i in range(len(ict_names))]
    index = {n: i for i, n in enumerate(ict_names)}
    missing = [s for _, srcs in arkit52_table() for s in srcs if s not in index]
    if missing:
        raise ValueError(f"the face model lacks the ICT shapes {', '.join(missing)} of data/arkit52.json")
    return arkit52_names(), [[index[s] for s in srcs] for _, srcs in arkit52_table()]


def weight_map(rig: str, ict_names: list[str]) -> np.ndarray:
    """(T, E) matrix: target weights = map @ ICT weights (the mean of a target's ICT shapes' weights)."""
    names, sources = rig_targets(rig, ict_names)
    m = np.zeros((len(names), len(ict_names)))
    for j, src in enumerate(sources):
        if src:
            m[j, src] = 1.0 / len(src)
    return m


def target_weights(expression, rig: str, ict_names: list[str]) -> np.ndarray:
    """A reconstruction's ICT expression weights as the rig's target weights, clamped to ARKit's [0, 1]."""
    e = np.asarray(expression, np.float64).reshape(-1)
    e = np.pad(e, (0, max(0, len(ict_names) - len(e))))[: len(ict_names)]
    w = e if check_rig(rig) == "ict" else weight_map(rig, ict_names) @ e
    return np.clip(w, 0.0, 1.0)
