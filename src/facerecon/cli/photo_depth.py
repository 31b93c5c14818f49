"""``facerecon photo-depth``: photo -> metric depth image, coloured point cloud, surface mesh (seed 001),
and the same depth through the depth path (DAPoseNet/DAShapeNet + refine) -> ICT mesh and pose."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ._console import stderr_console

console = stderr_console()

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")
DEPTH_PATH_DIR = "depth-path"
# the depth path's meshes: OBJ and PLY as before, and the GLB rig (--rig) that `facerecon view` and `animate` take
PHOTO_DEPTH_FORMATS = "obj,ply,glb"


class _Stages:
    """A spinner naming the stage in progress (a terminal only; beside a batch's progress bar),
    e.g. ``einstein.jpg: surface mesh (poisson)``.  ``stages(text)`` moves it on."""

    def __init__(self, console: Console, prefix: str = ""):
        self.console, self.prefix, self.status = console, prefix, None

    def __enter__(self) -> "_Stages":
        if self.console.is_terminal:
            try:
                self.status = self.console.status(self.prefix.rstrip(": ") or "working")
                self.status.start()
            except Exception:  # noqa: BLE001 - an older rich without nested live displays: no spinner
                self.status = None
        return self

    def __call__(self, text: str) -> None:
        if self.status is not None:
            self.status.update(f"{self.prefix}{text} ...")

    def __exit__(self, *exc) -> None:
        if self.status is not None:
            self.status.stop()


def _stage_times(res, depth_path_ms: float | None) -> str:
    """``fit 330 ms, depth 1 ms, surface 3822 ms, depth path 900 ms``: where a photo's time went."""
    t = res.timings_ms
    parts = [f"{label} {t[key]:.0f} ms" for key, label in (("photo_fit", "fit"), ("face_render", "render"), ("depth", "depth"),
                                                         ("metric", "metric"), ("surface", "surface")) if key in t]
    if depth_path_ms is not None:
        parts.append(f"depth path {depth_path_ms:.0f} ms")
    return ", ".join(parts)


def expand_photos(inputs: list[Path]) -> list[Path]:
    """Files as given; folders become their image files (sorted, not recursive)."""
    out: list[Path] = []
    for p in inputs:
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in PHOTO_SUFFIXES and not q.name.startswith("."))
        else:
            out.append(p)
    return out


def run_depth_path(result, reconstructor, out_dir: Path, refine: int | None, refine_shape: int | None, formats=("obj", "ply"),
                   head_frame: bool = True) -> dict:
    """The photo's metric head depth through ``Reconstructor``: face meshes, pose.json, landmarks.json, overlay.png."""
    from ..export import landmarks_json, save_overlay, write_face_meshes, write_json
    from ..export.pose_json import depth_document

    frame = result.depth_frame()
    # the out-of-span correction is not measured on monocular depth (it would copy the depth model's surface): off
    rec = reconstructor.reconstruct(frame, refine=refine, refine_shape=refine_shape, detail=False)
    pose = depth_document(rec, result.source, "photo-depth", reconstructor.model, photo_depth={"backend": result.backend})
    if not rec.face:  # the depth path's check refused the head: its reason, no mesh
        write_json(out_dir / "pose.json", pose)
        return {"pose": pose, "reconstruction": rec}
    write_face_meshes(rec, reconstructor.model, out_dir, tuple(formats), head_frame=head_frame)
    pose["overlay"] = save_overlay(rec, reconstructor.model, frame, out_dir / "overlay.png")
    write_json(out_dir / "pose.json", pose)
    write_json(out_dir / "landmarks.json", landmarks_json(rec))
    return {"pose": pose, "reconstruction": rec}


def write_photo_depth(result, out_dir: Path) -> list[Path]:
    """depth.png (uint16 mm), depth.npz (float mm + intrinsics + colour), depth_preview.png, cloud.ply,
    surface.ply, photo_depth.json."""
    import numpy as np

    from ..export import write_json
    from ..io.frame import DepthFrame
    from ..io.images import write_depth_npz, write_depth_png
    from ..photo.surface import write_cloud_ply, write_mesh_ply
    from ..viz.depthmap import save_depth_preview

    out_dir.mkdir(parents=True, exist_ok=True)
    head = result.head_depth_mm
    write_depth_png(out_dir / "depth.png", result.depth_mm)
    write_depth_npz(out_dir / "depth.npz", head, result.intrinsics, result.rgb)
    # the preview shows the head (+ a 25 % margin), not the whole photo around it
    ys, xs = np.nonzero(result.head_mask) if result.head_mask.any() else (np.array([0, head.shape[0] - 1]),
                                                                           np.array([0, head.shape[1] - 1]))
    m = int(0.25 * max(ys.max() - ys.min(), xs.max() - xs.min())) + 2
    y0, y1 = max(int(ys.min()) - m, 0), min(int(ys.max()) + m + 1, head.shape[0])
    x0, x1 = max(int(xs.min()) - m, 0), min(int(xs.max()) + m + 1, head.shape[1])
    preview = DepthFrame(head[y0:y1, x0:x1], result.intrinsics.crop(x0, y0, x1 - x0, y1 - y0), result.source,
                         np.ascontiguousarray(result.rgb[y0:y1, x0:x1]))
    save_depth_preview(preview, out_dir / "depth_preview.png",
                       title=f"{Path(result.source).name}: metric depth ({result.backend}), head crop at ({x0}, {y0})")
    written = [out_dir / n for n in ("depth.png", "depth.npz", "depth_preview.png")]
    if result.surface is not None:
        write_cloud_ply(out_dir / "cloud.ply", result.surface.cloud)
        write_mesh_ply(out_dir / "surface.ply", result.surface.mesh)
        written += [out_dir / "cloud.ply", out_dir / "surface.ply"]
    write_json(out_dir / "photo_depth.json", result.summary())
    written.append(out_dir / "photo_depth.json")
    return written


def process_photos(photos: list[Path], out: Path, depth_model: str, *, download: bool, surface: str, poisson_depth: int,
                   density_trim: float, depth_path: bool, config: str, refine: int | None, refine_shape: int | None,
                   focal: float | None = None, formats=("obj", "ply"), depth_path_dir: str = DEPTH_PATH_DIR,
                   used: set[str] | None = None, head_frame: bool = True) -> tuple[list[str], int]:
    """Run the pipeline on each photo (one sub-folder per photo, complete or absent); returns the
    one-line failures and the number of photos without a face.  ``depth_path_dir``: sub-folder
    for the depth path's files ("" = beside the depth files, as ``facerecon reconstruct
    --method photo-depth`` writes them)."""
    import time

    from ..fileutil import atomic_dir
    from ..photo.depth import FACE_MODEL
    from ..photo.depth_pipeline import PhotoDepthConfig, PhotoDepthPipeline
    from ..photo.surface import SurfaceConfig
    from ._frames import frame_stem, run_batch
    from ._photo import _engine

    cfg = PhotoDepthConfig(surface=SurfaceConfig(method=surface, poisson_depth=poisson_depth, density_quantile=density_trim))
    with _Stages(console) as stages:
        stages(f"loading the depth backend ({depth_model})")

        def photo_engine():
            stages("loading the photo models (face detector, landmarks, ICT face model)")
            return _engine()

        pipe = PhotoDepthPipeline.from_pretrained(depth_model, reconstructor=photo_engine, allow_download=download, config=cfg)
        rec_engine = None
        if depth_path:
            from ..pipeline import Reconstructor

            stages(f"loading the depth path's networks ({config})")
            rec_engine = Reconstructor.from_pretrained(config, model=pipe.model)
    line, fallback = pipe.describe_backend()
    console.print(line, style="yellow" if fallback else None, markup=False, soft_wrap=True)
    used = set() if used is None else used

    def handle(path: Path, _) -> None:
        with _Stages(console, f"{path.name}: ") as stages:
            res = pipe.run(path, focal_px=focal, stage=stages)
            d = out / frame_stem(path, used)
            with atomic_dir(d) as tmp:
                stages("writing depth.png, cloud.ply, surface.ply")
                write_photo_depth(res, tmp)
                what = "the fitted face rendered back, no depth network" if res.backend == FACE_MODEL else res.kind
                msg = (f"{path.name}: {res.backend} ({what}), metric median |dz| {res.metric.median_abs_mm:.1f} mm on "
                       f"{res.metric.n_pixels} face px")
                if res.surface is not None:
                    msg += f", surface {res.surface.n_triangles} triangles"
                dp_ms = None
                if rec_engine is not None:
                    stages("depth path (depth networks + refine on the metric head depth)")
                    t0 = time.perf_counter()
                    dp = run_depth_path(res, rec_engine, tmp / depth_path_dir if depth_path_dir else tmp, refine, refine_shape, formats,
                                        head_frame)
                    dp_ms = (time.perf_counter() - t0) * 1e3
                    e = dp["reconstruction"].pose.euler_deg
                    msg += (f", depth path yaw {e[0]:.1f} pitch {e[1]:.1f} roll {e[2]:.1f}" if dp["pose"].get("face", True)
                            else f", depth path: no face ({dp['pose'].get('reason', '')})")
        total = res.timings_ms["total"] + (dp_ms or 0.0)
        console.print(f"{msg}  {total:.0f} ms ({_stage_times(res, dp_ms)}) -> {d}", markup=False, soft_wrap=True)

    return run_batch(console, "photo depth", ((p, None, None) for p in photos), len(photos), handle)


def photo_depth_cmd(
    photos: list[Path] = typer.Argument(..., help="Photos (JPEG, PNG, PPM, ...) or folders of photos."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder: one sub-folder per photo."),
    depth_model: str = typer.Option("auto", "--depth-model", help=(
        "face-model (depth of the photo's ICT fit; no network weights) | a folder saved with save_pretrained "
        "(DPT or Depth Anything) | a Hugging Face hub id in the local cache | an exported .onnx file | a short name "
        "(dpt-hybrid, dpt-large, depth-anything-v2-small). auto = the first short-named model in the cache, else face-model.")),
    download: bool = typer.Option(False, "--download", help="Let transformers fetch a hub id that is not in the cache (needs network)."),
    surface: str = typer.Option("poisson", help="Surface from the point cloud: poisson (screened, density-trimmed) | ball-pivoting."),
    poisson_depth: int = typer.Option(8, help="Poisson octree depth: 8 = cells of ~1.2 mm over a 300 mm head box, 9 = ~0.6 mm (a photo's depth samples are coarser than either for a face beyond ~0.5 m)."),
    density_trim: float = typer.Option(0.05, help="Drop this fraction of the lowest-density Poisson vertices (the membrane over holes)."),
    depth_path: bool = typer.Option(True, "--depth-path/--no-depth-path",
                                    help=f"Also run the metric depth through the depth networks (+ refine): ICT mesh and pose in {DEPTH_PATH_DIR}/."),
    config: str = typer.Option("fast", help="Depth-path network configuration."),
    refine: Optional[int] = typer.Option(None, help="Depth path: rigid point-to-plane iterations after the networks, with the "
                                         "robust check (default: configs/check.toml)."),
    refine_shape: Optional[int] = typer.Option(None, help="Depth path: Gauss-Newton iterations of pose + identity after --refine "
                                               "(default: configs/check.toml [shape]; 0: off)."),
    focal: Optional[float] = typer.Option(None, help="Focal length in pixels (overrides EXIF and the default field of view)."),
    formats: str = typer.Option(PHOTO_DEPTH_FORMATS, "--format", help="Depth path: mesh formats, comma-separated: obj, ply, glb "
                                "(glb: the rig, ARKit's 52 morph targets by default (--rig), that facerecon view and animate take)."),
    rig: str = typer.Option("arkit52", help="Depth path: GLB morph targets: arkit52 (ARKit's 52 blendshape names and order, what "
                            "ARKit / MediaPipe drivers set) | ict (ICT-FaceKit's 55: browInnerUp and cheekPuff split left/right, "
                            "pupils). docs/animation.md."),
) -> None:
    """Photo -> MTCNN + ICT fit -> monocular depth -> metric depth (mm) -> coloured point cloud -> surface mesh.

    Per photo: depth.png (16-bit mm), depth.npz (mm + intrinsics + colour, readable by `facerecon reconstruct`),
    depth_preview.png, cloud.ply, surface.ply (coloured), photo_depth.json (backend, metric fit, timings), and
    depth-path/ (face.obj/ply/glb (--format; the GLB's morph targets: --rig), pose.json, landmarks.json, overlay.png
    from the depth networks).
    """
    from ..export.rig import use_rig
    from . import _options

    # the options first: a usage error (exit 2) comes before any model loads
    fmts = _options.formats(formats)
    rig = _options.rig(rig)
    paths = expand_photos(photos)
    if not paths:
        from ..errors import ConfigError

        raise ConfigError("no photos given (folders are searched for " + ", ".join(PHOTO_SUFFIXES) + ")")
    from ._frames import finish_batch

    with use_rig(rig):  # the depth path's GLBs take the rig from here
        failures, no_face = process_photos(paths, out, depth_model, download=download, surface=surface,
                                           poisson_depth=poisson_depth, density_trim=density_trim, depth_path=depth_path,
                                           config=config, refine=refine, refine_shape=refine_shape, focal=focal, formats=fmts)
    finish_batch(console, len(paths), len(failures), no_face)


def register(app: typer.Typer) -> None:
    app.command("photo-depth")(photo_depth_cmd)


def reconstruct_photo_depth(frames: list[Path], out: Path, config: str, refine: int | None, refine_shape: int | None,
                            focal: float | None, plan) -> None:
    """``facerecon reconstruct --method photo-depth``: every input is a photo; the depth path's files
    (face meshes, pose.json, landmarks.json, overlay.png) go in the photo's folder beside the
    photo-depth files (depth model: ``auto``; ``plan``: ``--format`` and ``--outputs``, whose meshes
    these are).  Exit codes as ``reconstruct``."""
    from ._frames import finish_batch

    paths = expand_photos(frames)
    if not paths:
        from ..errors import InputFileError
        from ._frames import PHOTO_TYPES

        raise InputFileError(frames[0], f"holds no {PHOTO_TYPES} (--method photo-depth reads photos)")
    failures, no_face = process_photos(paths, out, "auto", download=False, surface="poisson", poisson_depth=8,
                                       density_trim=0.05, depth_path=True, config=config, refine=refine,
                                       refine_shape=refine_shape, focal=focal, formats=plan.formats, depth_path_dir="",
                                       head_frame=plan.head_frame)
    finish_batch(console, len(paths), len(failures), no_face)
