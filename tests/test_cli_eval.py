"""`facerecon synth --format folder` and `facerecon eval pose|shape` on predictions of known error."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import trimesh

from facerecon.cli import main
from facerecon.datasets.folder import FolderDataset
from facerecon.io.mesh import read_mesh, write_mesh
from facerecon.geometry.rotations import euler_to_matrix

# the module's data set (3 synthetic faces with meshes) takes ~11 s; the eval-shape tests ~8-13 s each
pytestmark = pytest.mark.slow


def _run(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = main([str(a) for a in args])
    return rc, capsys.readouterr().err


def _one_line_error(err: str, path: Path) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0], err


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, ict_archive) -> Path:
    out = tmp_path_factory.mktemp("eval") / "ds"
    rc = main(["synth", "--preset", "facewarehouse", "--n", "3", "-o", str(out), "--seed", "3", "--format", "folder", "--meshes"])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def truth(dataset) -> dict:
    """name -> (pose, head-frame landmarks (68, 3), mesh path)."""
    return {s.name: (s.pose, s.pose.inverse_apply(s.landmarks_mm), s.mesh_path) for s in FolderDataset(dataset)}


def _summary(out: Path, kind: str) -> dict:
    return json.loads((out / f"{kind}_errors.json").read_text())["summary"]


# -- synth --format folder -----------------------------------------------------------------------
def test_synth_folder_export_has_exact_labels(dataset, truth, capsys):
    from facerecon.facemodel import FaceModel

    model = FaceModel.load()
    assert sorted(truth) == ["000000", "000001", "000002"]
    doc = json.loads((dataset / "000001.pose.json").read_text())
    assert len(doc["identity"]) == 100 and len(doc["expression"]) == 55 and {"R", "t_mm", "quaternion_wxyz", "euler_deg"} <= set(doc)
    pose, lm_head, mesh_path = truth["000001"]
    mesh = read_mesh(mesh_path)
    v_true = model.vertices(doc["identity"], doc["expression"])
    assert mesh_path.name == "000001.mesh.obj" and mesh.n_vertices == model.n_vertices
    assert np.abs(mesh.vertices - v_true).max() < 1e-3  # the head-frame ground truth
    assert np.abs(lm_head - model.landmarks(v_true)).max() < 1e-3  # 68 camera-frame landmarks, consistent with the pose
    rc, err = _run(capsys, "synth", "--preset", "facewarehouse", "--n", "3", "-o", dataset, "--seed", "3", "--format", "folder")
    assert rc == 0 and "wrote 0 new samples" in err  # resumed: nothing to do
    rc, err = _run(capsys, "synth", "--preset", "facewarehouse", "--n", "3", "-o", dataset, "--seed", "4", "--format", "folder")
    assert rc == 1 and "another dataset" in err


# -- eval pose -------------------------------------------------------------------------------------
def test_eval_pose_ground_truth_is_zero_error(dataset, truth, tmp_path, capsys):
    preds = tmp_path / "pred.json"
    preds.write_text(json.dumps({n: {"R": p.R.tolist(), "t_mm": p.t_mm.tolist()} for n, (p, _, _) in truth.items()}))
    rc, err = _run(capsys, "eval", "pose", "--data", dataset, "--method", preds, "-o", tmp_path / "out")
    assert rc == 0, err
    s = _summary(tmp_path / "out", "pose")
    assert s["n"] == 3 and s["n_failed"] == 0
    for k in ("yaw_mae", "pitch_mae", "roll_mae", "mae", "geodesic_mean", "geodesic_median", "translation_mean_mm"):
        assert s[k] < 1e-6, k
    assert "MAE" in err and "geo" in err  # the table
    for f in ("pose_errors.json", "pose_errors.csv", "pose_hist.png", "pose_per_sample.png"):
        assert (tmp_path / "out" / f).stat().st_size > 100, f


def test_eval_pose_yaw_offset_in_csv_formats(dataset, truth, tmp_path, capsys):
    eul = tmp_path / "euler.csv"
    rows = ["name,yaw,pitch,roll,tx,ty,tz"]
    rows += [f"{n},{p.yaw + 5.0},{p.pitch},{p.roll},{p.t_mm[0]},{p.t_mm[1]},{p.t_mm[2]}" for n, (p, _, _) in truth.items()]
    eul.write_text("\n".join(rows) + "\n")
    rc, err = _run(capsys, "eval", "pose", "--data", dataset, "--method", eul, "-o", tmp_path / "e")
    assert rc == 0, err
    s = _summary(tmp_path / "e", "pose")
    assert s["yaw_mae"] == pytest.approx(5.0, abs=1e-6) and s["pitch_mae"] < 1e-6 and s["roll_mae"] < 1e-6
    assert s["mae"] == pytest.approx(5.0 / 3, abs=1e-6) and s["geodesic_mean"] == pytest.approx(5.0, abs=1e-6)
    # quaternion columns in another order, extra column ignored, no translation: angles only
    quat = tmp_path / "quat.csv"
    rows = ["qw,qx,qy,qz,name,score"] + [",".join(map(str, [*p.quaternion_wxyz, n, 0.9])) for n, (p, _, _) in truth.items()]
    quat.write_text("\n".join(rows) + "\n")
    rc, err = _run(capsys, "eval", "pose", "--data", dataset, "--method", quat, "-o", tmp_path / "q")
    assert rc == 0, err
    s = _summary(tmp_path / "q", "pose")
    assert s["geodesic_mean"] < 1e-6 and s["translation_mean_mm"] is None and s["n_failed"] == 0


def test_eval_pose_folder_of_json_and_missing_prediction(dataset, truth, tmp_path, capsys):
    pred = tmp_path / "pred"
    pred.mkdir()
    for n, (p, _, _) in list(truth.items())[:2]:  # facerecon `pose -o` spelling and naming (NAME.depth.npz -> NAME_depth)
        yaw, pitch, roll = p.euler_deg
        doc = {"quaternion_wxyz": p.quaternion_wxyz.tolist(), "rotation_matrix": p.R.tolist(), "translation_mm": p.t_mm.tolist(),
               "euler_deg": {"yaw": yaw, "pitch": pitch, "roll": roll}, "confidence": 0.9}
        (pred / f"{n}_depth.pose.json").write_text(json.dumps(doc))
    rc, err = _run(capsys, "eval", "pose", "--data", dataset, "--method", pred, "-o", tmp_path / "out")
    assert rc == 0, err
    s = _summary(tmp_path / "out", "pose")
    assert s["n_samples"] == 3 and s["n"] == 2 and s["n_failed"] == 1 and s["geodesic_mean"] < 1e-6
    assert "000002: no prediction" in err  # reported, not dropped
    csv_rows = (tmp_path / "out" / "pose_errors.csv").read_text().splitlines()
    assert csv_rows[0].startswith("name,status,yaw_err_deg,pitch_err_deg,roll_err_deg,geodesic_err_deg,translation_err_mm")
    assert csv_rows[3].startswith("000002,failed,") and csv_rows[1].startswith("000000,ok,0,0,0,0,0,")


def test_eval_pose_bad_inputs_give_one_line_errors(dataset, tmp_path, capsys):
    cases = {
        "notjson.json": "{not json",
        "notrot.json": json.dumps({"000000": {"R": [[1, 0, 0], [0, 1, 0], [0, 0, 2]], "t_mm": [0, 0, 600]}}),
        "header.csv": "name,yaw,pitch\n000000,1,2\n",
        "number.csv": "name,yaw,pitch,roll\n000000,1,two,3\n",
        "nomatch.csv": "name,yaw,pitch,roll\nsomeone_else,1,2,3\n",
    }
    for fname, text in cases.items():
        path = tmp_path / fname
        path.write_text(text)
        rc, err = _run(capsys, "eval", "pose", "--data", dataset, "--method", path)
        assert rc == 1, fname
        _one_line_error(err, path)
    rc, err = _run(capsys, "eval", "pose", "--data", tmp_path, "--method", tmp_path / "nomatch.csv")
    assert rc == 1
    _one_line_error(err, tmp_path / "manifest.json")


def test_eval_pose_facerecon_runs_and_its_predictions_reevaluate(dataset, tmp_path, capsys):
    out = tmp_path / "fr"
    rc, err = _run(capsys, "eval", "pose", "--data", dataset, "--method", "facerecon", "--limit", "2", "-o", out)
    s = _summary(out, "pose")
    assert s["n_samples"] == 2 and s["n_evaluated"] + s["n_failed"] == 2
    assert rc == (0 if s["n_evaluated"] else 1), err
    if s["n_evaluated"]:
        assert s["geodesic_mean"] < 45.0  # a pose, not noise (accuracy is measured elsewhere)
        rc, err = _run(capsys, "eval", "pose", "--data", dataset, "--limit", "2", "--method", out / "pose_predictions.json",
                       "-o", tmp_path / "again")  # fmt: skip
        assert rc == 0, err
        s2 = _summary(tmp_path / "again", "pose")
        assert s2["n_failed"] == s["n_failed"] and s2["geodesic_mean"] == pytest.approx(s["geodesic_mean"], abs=1e-6)


# -- eval shape -------------------------------------------------------------------------------------
def test_eval_shape_identical_and_displaced(dataset, truth, tmp_path, capsys):
    same, disp = tmp_path / "same", tmp_path / "disp"
    same.mkdir()
    disp.mkdir()
    names = sorted(truth)[:2]  # the third sample has no prediction: a failure
    shutil.copy(truth[names[0]][2], same / f"{names[0]}.obj")
    (same / f"{names[1]}_depth").mkdir()  # facerecon reconstruct layout
    shutil.copy(truth[names[1]][2], same / f"{names[1]}_depth" / "face_head.obj")
    rc, err = _run(capsys, "eval", "shape", "--pred", same, "--gt", dataset, "-o", tmp_path / "o_same")
    assert rc == 0, err
    s = _summary(tmp_path / "o_same", "shape")
    assert s["n_evaluated"] == 2 and s["n_failed"] == 1 and "000002: no predicted mesh" in err
    for k in ("pred_to_gt_mean_mm", "pred_to_gt_median_mm", "gt_to_pred_mean_mm", "gt_to_pred_median_mm", "chamfer_eq8_mm2"):
        assert s[k] < 1e-6, k
    per = json.loads((tmp_path / "o_same" / "shape_errors.json").read_text())["per_sample"]
    assert per[0]["landmarks"].startswith("ict")

    for n in names:  # every vertex 1 mm out along its normal; landmarks from files, not displaced
        m = read_mesh(truth[n][2])
        normals = trimesh.Trimesh(m.vertices, m.faces, process=False).vertex_normals
        write_mesh(disp / f"{n}.obj", m.vertices + normals, m.faces)
        (disp / f"{n}.landmarks.json").write_text(json.dumps({"landmarks_mm": truth[n][1].tolist()}))
    rc, err = _run(capsys, "eval", "shape", "--pred", disp, "--gt", dataset, "--landmarks", "files", "-o", tmp_path / "o_disp")
    assert rc == 0, err
    s = _summary(tmp_path / "o_disp", "shape")
    assert s["pred_to_gt_median_mm"] == pytest.approx(1.0, abs=0.01) and s["gt_to_pred_median_mm"] == pytest.approx(1.0, abs=0.01)
    assert 0.9 < s["pred_to_gt_mean_mm"] <= 1.0 + 1e-6 and 0.9 < s["gt_to_pred_mean_mm"] <= 1.0 + 1e-6
    csv_rows = (tmp_path / "o_disp" / "shape_errors.csv").read_text().splitlines()
    assert csv_rows[0].startswith("name,status,pred_to_gt_mean_mm,pred_to_gt_median_mm,gt_to_pred_mean_mm,gt_to_pred_median_mm,chamfer")
    assert len(csv_rows) == 4 and csv_rows[3].startswith("000002,failed")
    for f in ("shape_hist.png", "shape_per_sample.png"):
        assert (tmp_path / "o_disp" / f).stat().st_size > 1000
    plys = sorted((tmp_path / "o_disp").glob("shape_colormap_*.ply"))
    assert len(plys) == 2 and all(p.with_suffix(".png").stat().st_size > 1000 for p in plys)
    cm = trimesh.load(plys[0], process=False)
    colours = np.asarray(cm.visual.vertex_colors)[:, :3].astype(int)
    assert 1000 < len(cm.vertices) < 26719 and len(np.unique(colours, axis=0)) > 1  # the face region, colour-mapped


def test_eval_shape_landmark_files_on_another_topology(dataset, truth, tmp_path, capsys):
    from facerecon.facemodel import EVAL_REGION, FaceModel

    model = FaceModel.load()
    pred = tmp_path / "pred"
    pred.mkdir()
    keep = model.region_triangles(EVAL_REGION)
    r, t = euler_to_matrix(20.0, -10.0, 5.0), np.array([5.0, -3.0, 40.0])  # pose must not matter
    for k, n in enumerate(sorted(truth)[:2]):
        m = read_mesh(truth[n][2])
        used = np.unique(keep)
        remap = np.full(m.n_vertices, -1)
        remap[used] = np.arange(len(used))
        v, f = trimesh.remesh.subdivide(m.vertices[used], remap[keep])  # same surface, other vertices and triangles
        lm = truth[n][1] @ r.T + t
        if k == 0:
            trimesh.Trimesh(v @ r.T + t, f, process=False).export(pred / f"{n}.ply")
            np.savetxt(pred / f"{n}.lmk.txt", lm[[36, 39, 42, 45, 30, 48, 54]])  # NoW-style 7 against the dataset's 68
        else:  # facerecon reconstruct layout: camera-frame landmarks.json + pose.json beside a head-frame face_head.ply
            d = pred / f"{n}_depth"
            d.mkdir()
            trimesh.Trimesh(v @ r.T + t, f, process=False).export(d / "face_head.ply")
            rc_, tc = euler_to_matrix(-30.0, 5.0, 0.0), np.array([10.0, 20.0, 700.0])
            (d / "landmarks.json").write_text(json.dumps({"landmarks_3d_mm_camera": (lm @ rc_.T + tc).tolist()}))
            (d / "pose.json").write_text(json.dumps({"rotation_matrix": rc_.tolist(), "translation_mm": tc.tolist()}))
    rc, err = _run(capsys, "eval", "shape", "--pred", pred, "--gt", dataset, "--landmarks", "files", "-o", tmp_path / "out")
    assert rc == 0, err
    s = _summary(tmp_path / "out", "shape")
    assert s["n_evaluated"] == 2
    for k in ("pred_to_gt_mean_mm", "pred_to_gt_median_mm", "gt_to_pred_mean_mm", "gt_to_pred_median_mm"):
        assert s[k] < 1e-3, (k, s[k])
    per = json.loads((tmp_path / "out" / "shape_errors.json").read_text())["per_sample"]
    assert [p["landmarks"] for p in per[:2]] == ["files (7 points)", "files (9 points)"]

    rc, err = _run(capsys, "eval", "shape", "--pred", pred, "--gt", dataset, "--landmarks", "ict")
    assert rc == 1
    _one_line_error(err, pred / "000000.ply")  # not ICT topology
    np.savetxt(pred / "000000.lmk.txt", np.zeros((5, 3)))
    rc, err = _run(capsys, "eval", "shape", "--pred", pred, "--gt", dataset, "--landmarks", "files")
    assert rc == 1
    _one_line_error(err, pred / "000000.lmk.txt")  # 5 points against 68
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "other.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    rc, err = _run(capsys, "eval", "shape", "--pred", empty, "--gt", dataset)
    assert rc == 1
    _one_line_error(err, empty)  # no name in common
