"""``facerecon eval pose`` and ``facerecon eval shape``: accuracy of facerecon or of any method.

    facerecon eval pose --data DIR [--method facerecon|PREDICTIONS] [--config fast] [-o OUT]
    facerecon eval shape --pred DIR --gt DIR [--landmarks auto|ict|files] [--icp] [--scale] [-o OUT]

``eval pose`` needs a labelled folder dataset (``DIR/manifest.json``, depth + ``NAME.pose.json``
per sample: :mod:`facerecon.datasets.folder`; ``facerecon synth --format folder`` writes
one).  ``--method facerecon`` runs on every frame exactly what ``facerecon pose`` writes
(``pipeline.reconstruct.PosePredictor``: the default output; a frame where no head is found
is a failure); any other value is a predictions file or folder of some
method: a folder of ``NAME.pose.json``, one JSON ``{"NAME": {pose}}``, or a CSV
``name,yaw,pitch,roll,tx,ty,tz`` / ``name,qw,qx,qy,qz,tx,ty,tz`` (all formats:
:mod:`facerecon.evaluate.files`).  Printed: per-axis MAE, their mean (the papers' "MAE"),
geodesic mean/median, translation error, N and failures.  A sample without a prediction
is a failure and is reported; errors are over the evaluated samples.

``eval shape`` pairs meshes by name: ``NAME.obj|ply`` or ``NAME/face_head.obj|ply`` in each
folder, or the meshes of a folder dataset given as ``--gt``.  Each prediction is aligned
rigidly on landmarks (``--landmarks``: ICT model vertices for ICT-topology meshes, else
``NAME.landmarks.json`` / ``NAME.lmk.txt`` beside each mesh), optionally refined by ICP,
then measured both ways as point-to-surface distances (mm) and with the paper's eq. 8
Chamfer (mm^2) (:mod:`facerecon.metrics.shape`).

With ``-o OUT`` both write JSON, CSV and PNG plots (and for shape PLY error colour maps):
see :mod:`facerecon.evaluate.report`.  Exit status: 0 when at least one sample was
evaluated, 1 when every sample failed or an input is malformed (one-line error naming the
file).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._console import stderr_console
from rich.table import Table

from ..errors import ConfigError, FaceReconError, InputFileError

console = stderr_console()
eval_app = typer.Typer(help="Evaluate head pose or face shape of facerecon or of any method against ground truth.",
                       no_args_is_help=True)  # fmt: skip
MAX_LISTED = 15  # failure lines printed; all of them are in the JSON/CSV


def _progress(total: int, label: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console,
                   disable=total < 2 or not console.is_terminal, transient=True)  # fmt: skip
    return bar, bar.add_task(label, total=total)


def _list_failures(failures: dict[str, str]) -> None:
    for i, (n, why) in enumerate(failures.items()):
        if i == MAX_LISTED:
            console.print(f"... and {len(failures) - MAX_LISTED} more (see the CSV)")
            break
        console.print(f"{n}: {why}", style="red", markup=False, soft_wrap=True)


def _f(v, fmt: str = ".2f") -> str:
    return "-" if v is None else format(v, fmt)


@eval_app.command("pose")
def pose_cmd(
    data: Path = typer.Option(..., "--data", help="Labelled folder dataset (manifest.json; NAME.depth.png|npz + NAME.pose.json)."),
    method: str = typer.Option("facerecon", "--method", help="'facerecon' (what `facerecon pose` writes: the default output), or the predictions of any "
                               "method: a folder of NAME.pose.json, a JSON {NAME: pose}, or a CSV with header "
                               "name,yaw,pitch,roll,tx,ty,tz or name,qw,qx,qy,qz,tx,ty,tz (degrees, mm, facerecon Euler "
                               "convention R = Ry(yaw) Rx(pitch) Rz(roll)); tx,ty,tz may be left out."),
    config: str = typer.Option("fast", help="Network configuration for --method facerecon."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Folder for pose_errors.json/.csv and plots (and, with "
                                       "--method facerecon, pose_predictions.json to re-evaluate later)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Evaluate only the first N labelled samples."),
) -> None:
    """Head pose errors against a labelled folder dataset: per-axis MAE, MAE, geodesic, translation, failures.

    The dataset is a folder in facerecon's folder format (facerecon synth --format folder
    writes one): manifest.json, NAME.depth.png|npz and NAME.pose.json per sample.

    Predictions are matched to samples by name (NAME, or NAME_depth as `facerecon pose`
    names them); a sample without a prediction (or null in a JSON file, an empty row in a
    CSV) counts as a failure.  A pose JSON may spell the rotation R / rotation_matrix /
    quaternion_wxyz / euler_deg and the translation t_mm / translation_mm.  Formats in
    full: `python -m pydoc facerecon.evaluate.files`.
    """
    from ..datasets.folder import FolderDataset
    from ..evaluate.files import PredictedPose, match_names, read_pose_predictions
    from ..evaluate.report import build_pose_report, write_pose_report

    ds = FolderDataset(data)
    if limit is not None and limit < 1:
        raise ConfigError("--limit must be at least 1")
    names = ds.names[:limit]
    if method != "facerecon":
        preds = read_pose_predictions(method)  # read first: a malformed file stops before any work
    truth, failures, predicted = {}, {}, {}
    unlabelled = 0
    est = None
    if method == "facerecon":
        from ..pipeline.reconstruct import PosePredictor

        est = PosePredictor(config)  # exactly what `facerecon pose` writes
    bar, task = _progress(len(names), "facerecon pose" if est else "reading samples")
    with bar:
        for n in names:
            s = ds.load(n)
            bar.advance(task)
            if s.pose is None:
                unlabelled += 1
                continue
            truth[n] = s.pose
            if est is not None:
                try:
                    p = est(s.frame).pose
                    predicted[n] = PredictedPose(p.R, p.t_mm)
                except FaceReconError as exc:  # e.g. no head found: a failure of the method, not of the run
                    failures[n] = exc.one_line()
    samples = [n for n in names if n in truth]
    if not samples:
        raise InputFileError(data / "manifest.json", "no sample has a pose label (NAME.pose.json)")
    unmatched: list[str] = []
    if est is None:
        mapping, unmatched = match_names(samples, preds.names, preds.source)
        if not mapping:
            raise InputFileError(preds.source, f"no prediction name matches a sample of {data} "
                                 f"(e.g. predictions {preds.names[:3]}, samples {samples[:3]})")  # fmt: skip
        for s_name, key in mapping.items():
            if key in preds.poses:
                predicted[s_name] = preds.poses[key]
            else:
                failures[s_name] = preds.failed[key]
    label = "facerecon" + (f" ({config})" if config != "fast" else "") if est else str(method)
    rep = build_pose_report(samples, truth, predicted, failures, method=label, data=str(data))
    if unlabelled:
        rep.notes.append(f"{unlabelled} samples without a pose label were skipped")
    if unmatched:
        rep.notes.append(f"{len(unmatched)} predictions match no labelled sample (e.g. {', '.join(unmatched[:3])})")
    _list_failures(rep.failures)
    e = rep.errors
    table = Table("N", "failed", "yaw", "pitch", "roll", "MAE", "geo mean", "geo med", "t mean mm", "t med mm",
                  title=f"pose errors (deg): {label} on {data.name}")  # fmt: skip
    table.add_row(str(len(rep.names)), f"{len(rep.failures)} of {len(samples)}",
                  *(("-",) * 8 if e is None else (_f(e.yaw_mae), _f(e.pitch_mae), _f(e.roll_mae), _f(e.mae),
                    _f(e.geodesic_mean), _f(e.geodesic_median), _f(e.translation_mean_mm, ".1f"),
                    _f(e.translation_median_mm, ".1f"))))  # fmt: skip
    console.print(table)
    for note in rep.notes:
        console.print(note, markup=False)
    if out is not None:
        written = write_pose_report(rep, out)
        if est is not None:
            _write_predictions(out / "pose_predictions.json", samples, predicted)
            written.append(out / "pose_predictions.json")
        console.print(f"wrote {', '.join(p.name for p in written)} -> {out}", markup=False)
    if e is None:
        raise typer.Exit(1)


def _write_predictions(path: Path, samples: list[str], predicted: dict) -> None:
    """facerecon's predictions in the JSON format --method reads (null = failed)."""
    import json

    from ..fileutil import write_text_atomic
    from ..geometry.pose import HeadPose

    doc = {n: (HeadPose(predicted[n].R, predicted[n].t_mm).to_json() if n in predicted else None) for n in samples}
    write_text_atomic(path, json.dumps(doc, indent=1) + "\n")


@eval_app.command("shape")
def shape_cmd(
    pred: Path = typer.Option(..., "--pred", help="Predicted meshes: NAME.obj|ply or NAME/face_head.obj|ply (facerecon reconstruct -o ... --outputs all)."),
    gt: Path = typer.Option(..., "--gt", help="Ground-truth meshes (same layout), or a folder dataset with NAME.mesh.obj|ply."),
    landmarks: str = typer.Option("auto", "--landmarks", help="ict: both meshes in ICT-FaceKit topology, its 9 alignment "
                                  "vertices; files: NAME.landmarks.json (key landmarks_mm: a list of x,y,z points) or "
                                  "NAME.lmk.txt (one 'x y z' row per point) beside each mesh, in the mesh's frame, same points "
                                  "on both sides (68 iBUG shrink to the 9/7 of the other side); auto: ict when both meshes are "
                                  "ICT, else files."),
    icp: bool = typer.Option(False, "--icp/--no-icp", help="Refine the landmark alignment with rigid ICP (slower; off: "
                             "landmarks only, the paper's protocol)."),
    scale: bool = typer.Option(False, "--scale/--no-scale", help="Similarity alignment (also fit a uniform scale): hides size errors."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Folder for shape_errors.json/.csv, plots and error colour maps."),
    vmax: float = typer.Option(5.0, "--colormap-max", help="Distance (mm) at the top of the colour maps."),
) -> None:
    """Shape errors between predicted and ground-truth meshes (any topology), paired by name.

    Distances in mm both ways (prediction vertices to the true surface and back) inside the
    face region without ears and neck for ICT-topology meshes, and the eq. 8 Chamfer (mm^2).
    A ground-truth mesh without a prediction is a failure.  With -o: JSON, CSV, plots
    and colour maps (PLY + PNG) of the median and the worst sample.  Formats in full:
    `python -m pydoc facerecon.evaluate.files`.
    """
    import numpy as np

    from ..evaluate.files import LANDMARK_MODES, pair_meshes, prepare_pair
    from ..evaluate.report import ShapeReport, ShapeSample, write_shape_report
    from ..metrics.shape import compare_meshes

    if landmarks not in LANDMARK_MODES:
        raise ConfigError(f"--landmarks must be one of {', '.join(LANDMARK_MODES)}, got {landmarks!r}")
    pairs = pair_meshes(pred, gt)
    if not pairs.pairs:
        raise InputFileError(pred, f"no mesh name matches a ground-truth mesh in {gt} "
                             f"(e.g. ground truth {pairs.gt_names[:3]}, predictions {pairs.unmatched[:3]})")  # fmt: skip
    model = _face_model(landmarks)
    failures = {n: "no predicted mesh for this sample" for n in pairs.missing}
    evaluated: list[ShapeSample] = []
    bar, task = _progress(len(pairs.pairs), "comparing meshes")
    with bar:
        for p_src, g_src in pairs.pairs:
            ps, gs, how = prepare_pair(p_src, g_src, landmarks, model)  # malformed input: stop with its one-line error
            try:
                e = compare_meshes(ps.vertices, ps.faces, gs.vertices, gs.faces, ps.landmarks, gs.landmarks,
                                   gt_mask=gs.mask, pred_mask=ps.mask, icp=icp, scale=scale)  # fmt: skip
            except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:  # degenerate landmarks, empty region
                failures[g_src.name] = f"{p_src.mesh_path}: {' '.join(str(exc).split())}"
            else:
                evaluated.append(ShapeSample(g_src.name, e, p_src.mesh_path, g_src.mesh_path, how))
            bar.advance(task)
    order = {n: i for i, n in enumerate(pairs.gt_names)}
    failures = dict(sorted(failures.items(), key=lambda kv: order[kv[0]]))
    settings = {"pred": str(pred), "gt": str(gt), "landmarks": landmarks, "icp": icp, "scale": scale,
                "region": "ICT narrow_face (face without ears and neck) on ICT-topology meshes, transferred to the other"}  # fmt: skip
    rep = ShapeReport(pairs.gt_names, evaluated, failures, settings, pairs.unmatched)
    _list_failures(rep.failures)
    sm = rep.summary()
    table = Table("N", "failed", "pred->gt mean", "pred->gt median", "gt->pred mean", "gt->pred median", "Chamfer mm^2",
                  title=f"shape errors (mm): {pred.name} vs {gt.name}")  # fmt: skip
    table.add_row(str(len(evaluated)), f"{len(failures)} of {len(pairs.gt_names)}",
                  *(_f(sm.get(k), ".3f") for k in ("pred_to_gt_mean_mm", "pred_to_gt_median_mm", "gt_to_pred_mean_mm",
                                                    "gt_to_pred_median_mm", "chamfer_eq8_mm2")))  # fmt: skip
    console.print(table)
    if pairs.unmatched:
        console.print(f"{len(pairs.unmatched)} predicted meshes match no ground truth (e.g. {', '.join(pairs.unmatched[:3])})",
                      markup=False)  # fmt: skip
    if out is not None:
        from ..io.mesh import read_mesh

        maps = []
        for tag, s in rep.picks():
            m = read_mesh(s.pred_path)
            maps.append((tag, s, m.vertices, m.faces))
        written = write_shape_report(rep, out, maps, vmax)
        console.print(f"wrote {len(written)} files -> {out}", markup=False)
    if not evaluated:
        raise typer.Exit(1)


def _face_model(mode: str):
    """The face model for ICT detection; ``auto`` / ``files`` work without it."""
    from ..facemodel import FaceModel

    try:
        return FaceModel.load()
    except FaceReconError:
        if mode == "ict":
            raise
        return None


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
