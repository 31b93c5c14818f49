"""Performance retargeting: ARKit blendshape curves (Live Link Face CSV, or our own per-frame
reconstructions) -> a glTF animation of the morph target weights of a rigged face GLB.

Live Link Face CSV (Epic Games' iOS app, "Export take"): a header row, then one row per frame::

    Timecode,BlendShapeCount,EyeBlinkLeft,EyeLookDownLeft,...,TongueOut,HeadYaw,HeadPitch,HeadRoll,
    LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll
    17:44:10:07.341,61,0.0123,...

``Timecode`` is ``HH:MM:SS:FF.fff`` (FF: frame number at the take's frame rate, .fff: a fraction
of a frame); the 52 ARKit curves are PascalCase (ARKit's own names are camelCase); the head and
eye rotations are not blendshapes and are ignored here. Names match case-insensitively to the
GLB's morph target names (docs/animation.md has the table), on either rig (:mod:`.rig`): an
``arkit52`` GLB has a target of every ARKit name; on an ``ict`` GLB, ICT splits ``browInnerUp`` and
``cheekPuff`` into left/right shapes, both driven by the one ARKit curve, and has no
``tongueOut``. ICT-named curves (our own pose.json) drive an ``arkit52`` GLB through the same
table: ``browInnerUp_L`` and ``_R`` average into ``browInnerUp``.

MediaPipe's face blendshapes (``FaceLandmarker`` results: a list of categories with
``categoryName`` and ``score``, ``_neutral`` first) become a track with :func:`blendshape_track`.
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputFileError
from ..fileutil import write_bytes_atomic
from .rig import arkit52_table

# The 52 ARKit blendshape columns in Live Link Face's order.
ARKIT_CURVES = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft", "EyeSquintLeft", "EyeWideLeft",
    "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight", "EyeSquintRight", "EyeWideRight",
    "JawForward", "JawRight", "JawLeft", "JawOpen", "MouthClose", "MouthFunnel", "MouthPucker", "MouthRight", "MouthLeft",
    "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft", "MouthFrownRight", "MouthDimpleLeft", "MouthDimpleRight",
    "MouthStretchLeft", "MouthStretchRight", "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper",
    "MouthPressLeft", "MouthPressRight", "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft", "MouthUpperUpRight",
    "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight", "CheekPuff", "CheekSquintLeft",
    "CheekSquintRight", "NoseSneerLeft", "NoseSneerRight", "TongueOut",
)  # fmt: skip
# Columns read and deliberately not used (head and eye rotations; the count of curves).
IGNORED_COLUMNS = ("BlendShapeCount", "HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                   "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
# Not blendshapes: MediaPipe's first category (the neutral score), ignored by blendshape_track.
MEDIAPIPE_IGNORED = ("_neutral",)
# Frame rates a Live Link Face take can have; the timecodes' frame numbers pick one.
STANDARD_FPS = (24.0, 25.0, 30.0, 48.0, 50.0, 60.0)
DEFAULT_FPS = 60.0  # the app's default, used when a take is too short to show its rate
_TIMECODE = re.compile(r"^\s*(\d+):(\d{1,2}):(\d{1,2})[:;](\d+)(?:\.(\d+))?\s*$")


def name_key(name: str) -> str:
    """Case-insensitive key that also equates ICT's ``_L``/``_R`` with ARKit's ``Left``/``Right``."""
    k = name.strip().lower()
    if k.endswith("_l"):
        k = k[:-2] + "left"
    elif k.endswith("_r"):
        k = k[:-2] + "right"
    return k


@dataclass
class BlendshapeTrack:
    """Blendshape curves over time: ``weights[i, j]`` is curve ``names[j]`` at ``times_s[i]``."""

    times_s: np.ndarray  # (N,) seconds from the first frame, strictly increasing
    names: list[str]
    weights: np.ndarray  # (N, C)
    fps: float
    source: str = ""
    ignored: list[str] = field(default_factory=list)  # columns present but not curves
    notes: list[str] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return int(len(self.times_s))


def _parse_timecode(path: Path, row: int, text: str) -> tuple[int, float]:
    m = _TIMECODE.match(text)
    if m is None:
        raise InputFileError(path, f"row {row}: timecode {text.strip()[:30]!r} is not HH:MM:SS:FF[.fff]")
    h, mi, s, f = (int(m.group(i)) for i in range(1, 5))
    frac = float("0." + m.group(5)) if m.group(5) else 0.0
    return (h * 60 + mi) * 60 + s, f + frac


def _infer_fps(seconds: np.ndarray, frames: np.ndarray) -> tuple[float, str | None]:
    """The take's rate from its timecodes: frame numbers run 0..fps-1 within a second."""
    top = float(np.floor(frames.max())) + 1.0
    spans_second = len(np.unique(seconds)) > 1
    if spans_second:
        # the largest frame number seen in a full second, rounded up to a standard rate
        for fps in STANDARD_FPS:
            if top <= fps:
                return fps, None
        return top, None
    for fps in STANDARD_FPS:
        if top <= fps and fps >= DEFAULT_FPS:
            return fps, f"take shorter than a second: frame rate assumed {fps:g} fps (give --fps)"
    return top, None


def read_arkit_csv(path: str | Path, fps: float | None = None) -> BlendshapeTrack:
    """Read a Live Link Face CSV; one-line :class:`InputFileError` for anything malformed."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise InputFileError(p, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(p, f"cannot read as UTF-8 text ({exc.__class__.__name__})") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if not rows:
        raise InputFileError(p, "empty CSV")
    header = [c.strip() for c in rows[0]]
    keys = [c.lower() for c in header]
    if "timecode" not in keys:
        raise InputFileError(p, "no Timecode column (not a Live Link Face CSV?)")
    curve_keys = {c.lower(): c for c in ARKIT_CURVES}
    ignored_keys = {c.lower() for c in IGNORED_COLUMNS}
    cols = [i for i, k in enumerate(keys) if k in curve_keys]
    if not cols:
        raise InputFileError(p, "no ARKit blendshape column (EyeBlinkLeft, JawOpen, ...) in the header")
    ignored = [header[i] for i, k in enumerate(keys) if k not in curve_keys and k != "timecode"]
    unknown = [h for h in ignored if h.lower() not in ignored_keys]
    if len(rows) < 2:
        raise InputFileError(p, "header only, no frames")
    tc = keys.index("timecode")
    secs, frames, values = [], [], []
    for r, row in enumerate(rows[1:], start=2):
        if len(row) < len(header):
            raise InputFileError(p, f"row {r}: {len(row)} fields, the header has {len(header)}")
        s, f = _parse_timecode(p, r, row[tc])
        secs.append(s)
        frames.append(f)
        try:
            vals = [float(row[i]) for i in cols]
        except ValueError:
            bad = next(header[i] for i in cols if not _is_float(row[i]))
            raise InputFileError(p, f"row {r}: {bad} = {row[header.index(bad)].strip()[:20]!r} is not a number") from None
        if not np.isfinite(vals).all():
            raise InputFileError(p, f"row {r}: a blendshape value is not finite")
        values.append(vals)
    sec = np.asarray(secs, np.float64)
    fr = np.asarray(frames, np.float64)
    notes = []
    if fps is None:
        fps, note = _infer_fps(sec, fr)
        if note:
            notes.append(note)
    if fps <= 0:
        raise InputFileError(p, f"frame rate must be positive, got {fps}")
    if np.floor(fr.max()) >= fps:
        raise InputFileError(p, f"timecode frame number {int(fr.max())} does not exist at {fps:g} fps")
    t = sec + fr / fps
    t = t - t[0]
    keep = np.r_[True, np.diff(t) > 1e-9]
    if (np.diff(t) < -1e-9).any():
        r = int(np.flatnonzero(np.diff(t) < -1e-9)[0]) + 3
        raise InputFileError(p, f"row {r}: timecode goes backwards")
    if not keep.all():
        notes.append(f"{int((~keep).sum())} rows with a repeated timecode dropped")
    if unknown:
        notes.append(f"columns not used: {', '.join(unknown[:8])}")
    names = [curve_keys[keys[i]] for i in cols]
    return BlendshapeTrack(t[keep], names, np.asarray(values, np.float64)[keep], float(fps), str(p), ignored, notes)


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(p))]


def read_reconstruction_sequence(folder: str | Path, fps: float = 30.0) -> BlendshapeTrack:
    """Per-frame expression weights from ``reconstruct`` outputs: ``<folder>/*/pose.json`` (natural order)."""
    d = Path(folder)
    if not d.is_dir():
        raise InputFileError(d, "not a folder of reconstruct outputs")
    files = sorted(d.glob("*/pose.json"), key=_natural_key) or ([d / "pose.json"] if (d / "pose.json").is_file() else [])
    if not files:
        raise InputFileError(d, "no */pose.json (run facerecon reconstruct on the frames first)")
    names: list[str] | None = None
    rows = []
    for f in files:
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputFileError(f, f"not valid JSON ({exc.__class__.__name__})") from None
        expr = doc.get("expression") if isinstance(doc, dict) else None
        if not isinstance(expr, dict) or not expr:
            raise InputFileError(f, "no 'expression' block (written by facerecon reconstruct since the rigged export)")
        if names is None:
            names = list(expr)
        try:
            rows.append([float(expr[n]) for n in names])
        except (KeyError, TypeError, ValueError):
            raise InputFileError(f, "'expression' has other names than the first frame's, or a value that is not a number") from None
    if fps <= 0:
        raise InputFileError(d, f"frame rate must be positive, got {fps}")
    w = np.asarray(rows, np.float64)
    return BlendshapeTrack(np.arange(len(w)) / fps, names or [], w, float(fps), str(d))


def read_blendshape_json(path: str | Path, fps: float = 30.0) -> BlendshapeTrack:
    """A JSON file of MediaPipe-style blendshapes (see :func:`blendshape_track`): a list of frames,
    or ``{"frames": [...]}``; one-line :class:`InputFileError` for anything malformed."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(p, "no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(p, f"not valid JSON ({exc.__class__.__name__})") from None
    frames = doc.get("frames") if isinstance(doc, dict) else doc
    if not isinstance(frames, list) or not frames:
        raise InputFileError(p, "expected a list of frames (each a list of blendshape categories or a {name: weight} object)")
    try:
        return blendshape_track(frames, fps, str(p))
    except (ValueError, TypeError, AttributeError) as exc:
        raise InputFileError(p, " ".join(str(exc).split())[:200]) from None


@dataclass
class Retargeted:
    weights: np.ndarray  # (N, T) one column per morph target
    mapping: dict[str, list[str]]  # source curve -> target names it drives
    unused: list[str]  # source curves with no target
    undriven: list[str]  # targets no curve drives (held at 0)


def split_curves() -> dict[str, tuple[str, ...]]:
    """ARKit curve key -> the keys of the ICT shapes it is made of, where more than one
    (``browinnerup`` -> ``browinnerupleft``, ``browinnerupright``; ``cheekpuff`` likewise), from data/arkit52.json."""
    return {name_key(a): tuple(name_key(s) for s in srcs) for a, srcs in arkit52_table() if len(srcs) > 1}


def retarget(track: BlendshapeTrack, target_names: list[str]) -> Retargeted:
    """Columns of ``track`` onto the GLB's morph targets by name (see :func:`name_key`), either rig:

    * a curve whose name is a target's drives it (ARKit curves on an ``arkit52`` GLB, ICT names on an ``ict`` one);
    * an ARKit curve made of several ICT shapes (``BrowInnerUp``, ``CheekPuff``) drives each of them on an ``ict`` GLB;
    * ICT's split shapes (``browInnerUp_L`` / ``_R`` of a pose.json) drive the one ARKit target on an
      ``arkit52`` GLB with their mean (the table's rule, as the exporter's default weights).
    Weights are clamped to [0, 1] (ARKit's range)."""
    tkeys = {name_key(n): j for j, n in enumerate(target_names)}
    splits = split_curves()
    merges = {s: (a, len(srcs)) for a, srcs in splits.items() for s in srcs}  # ICT half -> (ARKit key, halves)
    out = np.zeros((track.n_frames, len(target_names)), np.float64)
    mapping: dict[str, list[str]] = {}
    unused = []
    for c, name in enumerate(track.names):
        k = name_key(name)
        if k in tkeys:
            dest, share = [k], 1.0
        elif k in merges and merges[k][0] in tkeys:
            dest, share = [merges[k][0]], 1.0 / merges[k][1]
        else:
            dest, share = [s for s in splits.get(k, ()) if s in tkeys], 1.0
        if not dest:
            unused.append(name)
            continue
        mapping[name] = [target_names[tkeys[s]] for s in dest]
        for s in dest:
            if share == 1.0:
                out[:, tkeys[s]] = track.weights[:, c]
            else:
                out[:, tkeys[s]] += share * track.weights[:, c]
    driven = {t for ts in mapping.values() for t in ts}
    return Retargeted(np.clip(out, 0.0, 1.0), mapping, unused, [t for t in target_names if t not in driven])


def blendshape_track(frames, fps: float = 30.0, source: str = "blendshapes") -> BlendshapeTrack:
    """A track from MediaPipe-style blendshape results, one entry per frame: a list of categories
    (``{"categoryName": "browInnerUp", "score": 0.3, ...}``, MediaPipe's ``FaceLandmarker`` output as
    JSON; objects with ``category_name`` / ``score`` attributes work too) or a plain ``{name: weight}``
    dict. ``_neutral`` is ignored; the names of the first frame are the columns (a later frame
    lacking one holds 0 there)."""
    rows: list[dict[str, float]] = []
    seen: set[str] = set()
    for f in frames:
        if isinstance(f, dict):
            row = {str(k): float(v) for k, v in f.items()}
        else:
            row = {}
            for cat in f:
                if isinstance(cat, dict):
                    n, v = cat.get("categoryName", cat.get("category_name")), cat.get("score")
                else:
                    n, v = getattr(cat, "category_name", None), getattr(cat, "score", None)
                if n is None or v is None:
                    raise ValueError(f"a blendshape category without a name or a score: {cat!r}"[:200])
                row[str(n)] = float(v)
        seen.update(k for k in row if k in MEDIAPIPE_IGNORED)
        rows.append({k: v for k, v in row.items() if k not in MEDIAPIPE_IGNORED})
    if not rows:
        raise ValueError("no frames")
    if fps <= 0:
        raise ValueError(f"frame rate must be positive, got {fps}")
    names = list(rows[0])
    w = np.array([[r.get(n, 0.0) for n in names] for r in rows], np.float64)
    if not np.isfinite(w).all():
        raise ValueError("a blendshape weight is not finite")
    return BlendshapeTrack(np.arange(len(rows)) / fps, names, w, float(fps), source, sorted(seen))


def glb_target_names(path: str | Path) -> list[str]:
    """The morph target names (``mesh.extras.targetNames``) of a rigged GLB."""
    g = _load_glb(Path(path))
    return _targets_of(Path(path), g)[1]


def _load_glb(p: Path):
    from pygltflib import GLTF2

    if not p.is_file():
        raise InputFileError(p, "no such file")
    try:
        g = GLTF2.load_binary(str(p)) if p.suffix.lower() == ".glb" else None
    except Exception as exc:  # pygltflib raises several types on corrupt files
        raise InputFileError(p, f"cannot read GLB ({exc.__class__.__name__})") from None
    if g is None:
        raise InputFileError(p, "expected a .glb file")
    return g


def _targets_of(p: Path, g) -> tuple[int, list[str], int]:
    """(mesh index, target names, node index) of the first mesh with named morph targets."""
    for mi, mesh in enumerate(g.meshes):
        names = (mesh.extras or {}).get("targetNames") if isinstance(mesh.extras, dict) else None
        n = len(mesh.primitives[0].targets or []) if mesh.primitives else 0
        if n and names and len(names) == n:
            node = next((i for i, nd in enumerate(g.nodes) if nd.mesh == mi), None)
            if node is not None:
                return mi, list(names), node
    raise InputFileError(p, "no mesh with named morph targets (mesh.extras.targetNames): export it with facerecon --format glb")


def add_weight_animation(glb_in: str | Path, glb_out: str | Path, times_s: np.ndarray, weights: np.ndarray,
                         name: str = "performance") -> dict:
    """Copy ``glb_in`` to ``glb_out`` with one more animation: LINEAR keys of the morph weights.

    ``weights`` is (N, T) in the order of the mesh's targets, clamped to [0, 1] (ARKit's range) as
    written. Returns a summary (frames, duration, bytes).
    """
    from pygltflib import Accessor, Animation, AnimationChannel, AnimationChannelTarget, AnimationSampler, BufferView


    src = Path(glb_in)
    g = _load_glb(src)
    mi, names, node = _targets_of(src, g)
    t = np.asarray(times_s, np.float32)
    w = np.clip(np.asarray(weights, np.float32), 0.0, 1.0)
    if w.shape != (len(t), len(names)):
        raise ValueError(f"weights {w.shape} for {len(t)} times and {len(names)} targets")
    if len(t) == 0 or (len(t) > 1 and not (np.diff(t) > 0).all()):
        raise ValueError("key times must be strictly increasing")
    for a in g.accessors:  # pygltflib fills in byteOffset 0 on load, which glTF forbids without a bufferView
        if a.bufferView is None:
            a.byteOffset = None
    blob = bytearray(g.binary_blob() or b"")
    blob += b"\0" * (-len(blob) % 4)

    def view(data: bytes) -> int:
        g.bufferViews.append(BufferView(buffer=0, byteOffset=len(blob), byteLength=len(data)))
        blob.extend(data)
        blob.extend(b"\0" * (-len(blob) % 4))
        return len(g.bufferViews) - 1

    g.accessors.append(Accessor(bufferView=view(t.tobytes()), componentType=5126, count=len(t), type="SCALAR",
                                min=[float(t.min())], max=[float(t.max())]))
    a_in = len(g.accessors) - 1
    g.accessors.append(Accessor(bufferView=view(w.tobytes()), componentType=5126, count=w.size, type="SCALAR"))
    a_out = len(g.accessors) - 1
    g.animations.append(Animation(name=name, samplers=[AnimationSampler(input=a_in, output=a_out, interpolation="LINEAR")],
                                  channels=[AnimationChannel(sampler=0, target=AnimationChannelTarget(node=node, path="weights"))]))
    g.buffers[0].byteLength = len(blob)
    g.set_binary_blob(bytes(blob))
    data = b"".join(g.save_to_bytes())
    write_bytes_atomic(glb_out, data)
    return {"frames": int(len(t)), "duration_s": float(t[-1]) if len(t) else 0.0, "bytes": len(data), "targets": len(names)}
