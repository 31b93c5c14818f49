"""The robust check after the networks (facerecon.pipeline.check): its measures, the refinement,
the fallback, and that confidence / landmark check describe the returned pose."""
from __future__ import annotations

import numpy as np
import pytest

from facerecon.errors import ConfigError
from facerecon.export.pose_json import depth_document, validate
from facerecon.pipeline.check import check_config, rotate_position_image
from facerecon.geometry.rotations import euler_to_matrix, geodesic_distance_deg


@pytest.fixture(scope="module")
def reconstructor():
    from facerecon.pipeline import Reconstructor

    return Reconstructor.from_pretrained("fast")


@pytest.fixture(scope="module")
def frames(reconstructor):
    from facerecon.evaluate.hostile import _generator, head_frame

    gen = _generator("biwi", "kinect-v1", 0, reconstructor.model)
    return [head_frame(gen, i) for i in (0, 2)]


@pytest.fixture(scope="module")
def turned_case(reconstructor, frames):
    """(true pose, the frame's true head-frame mesh, its measured surface, the true pose turned 40 degrees
    in yaw and -20 in pitch about the head origin: what the networks do on face-only surfaces)."""
    from facerecon.pipeline.check import MeasuredSurface, turn_about
    from facerecon.pipeline.frame import locate

    model = reconstructor.model
    f = frames[1]
    truth = f.meta["pose_for_eval_only"]
    v = model.vertices(f.meta["identity_for_eval_only"], np.zeros(model.n_expression)).astype(np.float64)
    surf = MeasuredSurface.from_position_image(locate(f).position_image)
    wrong = turn_about(truth, truth.R[:, 1], 40.0, truth.t_mm)
    wrong = turn_about(wrong, wrong.R[:, 0], -20.0, wrong.t_mm)
    return truth, v, surf, wrong


def test_config_rejects_unknown_keys():
    assert check_config({"refine": {"iterations": 3}}).refine.iterations == 3
    with pytest.raises(ConfigError, match=r"unknown setting 'refine.iteration' \(did you mean 'refine.iterations'"):
        check_config({"refine": {"iteration": 3}})
    with pytest.raises(ConfigError, match="unknown setting 'refin' .did you mean 'refine'"):
        check_config({"refin": {}})


def test_rotated_position_image_is_the_scene_turned_about_the_view_axis():
    rng = np.random.default_rng(0)
    s = 8
    data = rng.normal(size=(3, s, s)).astype(np.float32)
    m = (s - 1) / 2
    for k in (1, 2, 3):
        q = euler_to_matrix(0.0, 0.0, 90.0 * k)
        out = rotate_position_image(data, k)
        for i, j in ((2, 5), (0, 7), (3, 3)):
            a, b = q[:2, :2] @ [j - m, i - m]  # where pixel (i, j) moves
            np.testing.assert_allclose(out[:, int(round(b + m)), int(round(a + m))], q @ data[:, i, j], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(rotate_position_image(data, 4), data)


def test_check_measures_a_right_and_a_wrong_pose(reconstructor, frames):
    """The true pose with the true shape lies on the points (~1 mm); 15 degrees off does not."""
    from facerecon.pipeline.check import MeasuredSurface, surface_check
    from facerecon.pipeline.frame import locate
    from facerecon.geometry.pose import HeadPose

    est = reconstructor.pose
    model = reconstructor.model
    f = frames[0]
    truth = f.meta["pose_for_eval_only"]
    v = model.vertices(f.meta["identity_for_eval_only"], np.zeros(model.n_expression)).astype(np.float64)
    pim = locate(f).position_image
    surf = MeasuredSurface.from_position_image(pim)
    good = surface_check(v, truth, est.region, surf, est.check_cfg)
    bad = surface_check(v, HeadPose(euler_to_matrix(15.0, 0.0, 0.0) @ truth.R, truth.t_mm), est.region, surf, est.check_cfg)
    assert good.residual_mm < 2.5 and good.free_space < 0.05 and good.coverage > 0.8 and good.landmark_fit > 0.8, good
    assert bad.residual_mm > good.residual_mm + 2.0 and bad.central_residual_mm > 4.0, bad


def test_refinement_is_default_and_confidence_describes_the_returned_pose(reconstructor, frames):
    """Default (refined) vs --no-refine on synthetic frames: the refined residual is lower, and the
    reported check / landmark fit are those of the pose that is returned."""
    from facerecon.pipeline.check import MeasuredSurface, surface_check

    for f in frames:
        bare = reconstructor.reconstruct(f, refine=0)
        full = reconstructor.reconstruct(f)
        assert bare.chosen == "network" and bare.refine_iterations == 0
        np.testing.assert_allclose(bare.pose.R, bare.network_pose.R)
        assert full.refine_iterations == check_config().refine.iterations
        assert full.check.residual_mm <= bare.check.residual_mm + 1e-6
        # recompute the check of the returned pose and mesh: it is the one reported
        pr = full
        # (the model fit: the out-of-span correction of the returned surface comes after the check and the decision)
        again = surface_check(full.model_vertices_head, full.pose, reconstructor.pose.region,
                              MeasuredSurface.from_position_image(pr.position_image), reconstructor.pose.check_cfg)
        assert again.residual_mm == pytest.approx(pr.check.residual_mm) and pr.landmark_fit == pytest.approx(again.landmark_fit)
        assert full.confidence == pr.confidence >= 0.5 and pr.face, (pr.confidence, pr.confidence_terms)
        err = geodesic_distance_deg(full.pose.R, f.meta["pose_for_eval_only"].R)
        assert err < 6.0, err
        js = depth_document(pr, "frame", "network", reconstructor.model)
        validate(js)
        d = js["depth"]
        assert js["face"] is True and d["network"]["check"]["trimmed_residual_mm"] is not None and d["path"]["label"] == pr.chosen


def test_grid_search_recovers_a_pose_the_networks_miss_by_40_degrees(reconstructor, turned_case):
    """A network pose 40 degrees off in yaw and 20 in pitch (what the networks do on face-only
    surfaces): without the grid, refinement stays in the wrong basin; with it, the true pose is
    found; and no alternative is taken whose trimmed residual is worse than the refined first
    candidate's by more than the slack."""
    from facerecon.pipeline.check import Candidate, Start, refine_rigid, robust_pose, surface_check

    est = reconstructor.pose
    truth, v, surf, wrong = turned_case
    no_grid = check_config({"search": {"yaw_deg": [], "pitch_deg": [], "patch_radii_mm": []}, "fallback": {"rolls_deg": []}})
    stuck = robust_pose([Candidate(Start.NETWORK, wrong)], v, est.region, surf, no_grid, 6)
    assert geodesic_distance_deg(stuck.pose.R, truth.R) > 15.0, "the test needs a start refinement alone does not recover"
    grid = check_config({"search": {"patch_radii_mm": []}})  # the grid alone (the patch's own starts come before it)
    found = robust_pose([Candidate(Start.NETWORK, wrong)], v, est.region, surf, grid, 6)
    assert geodesic_distance_deg(found.pose.R, truth.R) < 5.0 and found.chosen.start is Start.GRID, (found.chosen, geodesic_distance_deg(found.pose.R, truth.R))
    # the search stopped there: a clear pass from the grid, the rolls after it never tried
    assert not any("rolled" in label for label, _ in found.tried), found.tried
    # without the early stop every cell and roll is tried, and the same basin wins
    every = {"stop_confidence": 1.01, "patch_radii_mm": [], "rolls_after_a_face": True}
    full = robust_pose([Candidate(Start.NETWORK, wrong)], v, est.region, surf, check_config({"search": every}), 6)
    assert any("rolled" in label for label, _ in full.tried) and geodesic_distance_deg(full.pose.R, found.pose.R) < 3.0
    # [search] rolls_after_a_face = false: the grid found a face, so the rolls (and turned crops) are not tried; the same pose
    no_rolls = robust_pose([Candidate(Start.NETWORK, wrong)], v, est.region, surf, check_config({"search": {**every, "rolls_after_a_face": False}}), 6)
    assert not any("rolled" in label for label, _ in no_rolls.tried) and no_rolls.chosen.label == full.chosen.label, no_rolls.tried
    np.testing.assert_array_equal(no_rolls.pose.R, full.pose.R)
    vs, ns = est.region.sample_with_normals(v)
    first = surface_check(v, refine_rigid(wrong, vs, ns, surf, est.check_cfg, 6), est.region, surf, est.check_cfg)
    assert found.check.residual_mm <= first.residual_mm + est.check_cfg.fallback.residual_slack_mm


def test_a_face_only_patch_gives_its_own_start_before_the_grid(reconstructor, turned_case):
    """``[search] patch_radii_mm``: on a face-only patch (the frame's points within 90 mm of the true
    nose: no hair, no shoulders) the patch's principal axes matched to the face's give a start the
    refinement takes to the true pose from a networks' pose 40 degrees off, and the search stops there,
    before the grid's first cell; with the patch's starts off the grid is searched."""
    from dataclasses import replace

    from facerecon.pipeline.check import Candidate, Start, patch_start, robust_pose

    est = reconstructor.pose
    truth, v, surf, wrong = turned_case
    nose = v[reconstructor.model.landmarks_68[30]]
    near = np.linalg.norm(surf.points - truth.apply(nose[None])[0], axis=-1) < 90.0
    face_only = replace(surf, valid=surf.valid & near, depth=np.where(surf.valid & near, surf.depth, 0.0))
    vs, ns = est.region.sample_with_normals(v)
    cfg = est.check_cfg
    for r in cfg.search.patch_radii_mm:
        start = patch_start(wrong, vs, ns, nose, face_only, r, cfg.search.patch_passes)
        assert geodesic_distance_deg(start.R, truth.R) < 20.0, (r, geodesic_distance_deg(start.R, truth.R))
    found = robust_pose([Candidate(Start.NETWORK, wrong)], v, est.region, face_only, cfg, 6)
    assert found.chosen.start is Start.PATCH and geodesic_distance_deg(found.pose.R, truth.R) < 5.0, (found.chosen, found.tried)
    assert not any("yaw" in label for label, _ in found.tried), found.tried
    off = robust_pose([Candidate(Start.NETWORK, wrong)], v, est.region, face_only, check_config({"search": {"patch_radii_mm": []}}), 6)
    assert any("yaw" in label for label, _ in off.tried) and not any(label.startswith("patch") for label, _ in off.tried)
    # too few points: no start
    assert patch_start(wrong, vs, ns, nose, replace(surf, valid=np.zeros_like(surf.valid)), 0.0, 5) is None


def test_grid_renders_only_cells_whose_pair_fit_competes(reconstructor, turned_case):
    """``[search] check_best``: the pair fit (the refinement's association, no rendering) ranks the
    true pose above a turned one; with it the grid renders the nearest cells and then only cells
    whose pair fit is among the best so far, and keeps the same best cell as checking every cell."""
    from facerecon.pipeline.check import ProjectivePairs, pair_fit, search_grid

    est = reconstructor.pose
    truth, v, surf, wrong = turned_case
    vs, ns = est.region.sample_with_normals(v)
    assert pair_fit(truth, vs, ns, ProjectivePairs(surf), est.check_cfg) < pair_fit(wrong, vs, ns, ProjectivePairs(surf), est.check_cfg)
    checked = {}
    for k in (0, 4):
        cfg = check_config({"search": {"stop_confidence": 1.01, "check_best": k}})  # no early stop: the whole grid
        labels = checked[k] = []
        kept = list(search_grid(wrong, vs, ns, v, est.region, surf, cfg, lambda q, ch, cand, labels=labels: labels.append(cand.label)))
        checked[k, "best"] = kept[0].label
    assert len(checked[0]) == 34 and 4 <= len(checked[4]) < 34, (len(checked[0]), len(checked[4]))
    assert checked[4][:4] == checked[0][:4]  # the nearest cells are always rendered
    assert checked[4, "best"] == checked[0, "best"]


def test_grid_yields_a_rings_best_face_before_the_far_rings(reconstructor, turned_case):
    """``[search] ring_full``: with no clear pass among the coarse cells, the grid hands its best face so
    far to the full refinement at the end of the ring where it was found, not after all 34 cells."""
    from facerecon.pipeline.check import search_grid

    est = reconstructor.pose
    truth, v, surf, wrong = turned_case
    vs, ns = est.region.sample_with_normals(v)
    seen = {}
    for ring_full in (False, True):
        cfg = check_config({"search": {"stop_confidence": 1.01, "check_best": 0, "ring_full": ring_full}})
        labels = []
        grid = search_grid(wrong, vs, ns, v, est.region, surf, cfg, lambda q, ch, cand, labels=labels: labels.append(cand.label))
        first = next(grid)
        seen[ring_full] = (len(labels), first.label, geodesic_distance_deg(first.pose.R, truth.R))
    assert seen[False][0] == 34 and seen[True][0] < 34, seen
    assert seen[True][2] < 10.0, seen  # the ring's best is the true pose's basin


def test_grid_tries_the_pure_yaw_turns_first(reconstructor, turned_case):
    """``[search] yaw_first``: the grid's cells with pitch 0 come first, nearest turn first, then the pitched cells;
    a networks' pose 60 degrees off in yaw alone (a profile the networks call near frontal) is found after the six
    yaw cells' coarse refinements at most, where nearest-first ordering reaches the 60 degree column after 20 cells."""
    from facerecon.pipeline.check import search_grid, turn_about

    est = reconstructor.pose
    truth, v, surf, _ = turned_case
    vs, ns = est.region.sample_with_normals(v)
    wrong = turn_about(truth, truth.R[:, 1], 60.0, truth.t_mm)
    seen = {}
    for yaw_first in (False, True):
        labels = []
        cfg = check_config({"search": {"check_best": 0, "ring_full": False, "yaw_first": yaw_first}})
        kept = next(search_grid(wrong, vs, ns, v, est.region, surf, cfg, lambda q, ch, cand, labels=labels: labels.append(cand)))
        seen[yaw_first] = labels
        assert geodesic_distance_deg(kept.pose.R, truth.R) < 5.0, (yaw_first, kept.label)
    assert [(c.yaw_deg, c.pitch_deg) for c in seen[True][:4]] == [(-20.0, 0.0), (20.0, 0.0), (-40.0, 0.0), (40.0, 0.0)]
    assert len(seen[True]) <= 6 and len(seen[False]) > 20, (len(seen[True]), len(seen[False]))


def test_a_confident_pose_the_score_ranks_lower_replaces_a_no_face_choice(reconstructor, turned_case):
    """When no candidate passes clearly and the score's choice is no face by the check while another
    pose tried is a face, the search returns that one (near profile the score's all-landmark term
    ranks a frontal pose with a 4 mm residual over the profile pose the check accepts)."""
    from facerecon.pipeline.check import Candidate, Start, check_confidence, robust_pose

    est = reconstructor.pose
    truth, v, surf, wrong = turned_case
    # no grid, no rolls, and a margin no alternative can beat: the score keeps the networks' pose
    cfg = check_config({"search": {"yaw_deg": [], "pitch_deg": [], "patch_radii_mm": []}, "fallback": {"rolls_deg": [], "margin_mm": 1000.0}})
    threshold = cfg.decision.face_threshold
    fit = robust_pose([Candidate(Start.NETWORK, wrong), Candidate(Start.DIRECT, truth)], v, est.region, surf, cfg, 6)
    alone = robust_pose([Candidate(Start.NETWORK, wrong)], v, est.region, surf, cfg, 6)
    assert check_confidence(alone.check, cfg) < threshold, "the test needs a networks' pose the check calls no face"
    assert fit.chosen.start is Start.DIRECT and geodesic_distance_deg(fit.pose.R, truth.R) < 5.0, fit.chosen
    assert check_confidence(fit.check, cfg) >= threshold
    # the networks' pose right: kept (it passes the acceptance test; no alternative is tried)
    kept = robust_pose([Candidate(Start.NETWORK, truth), Candidate(Start.DIRECT, wrong)], v, est.region, surf, cfg, 6)
    assert kept.chosen.start is Start.NETWORK and geodesic_distance_deg(kept.pose.R, truth.R) < 5.0
    # the same candidates as ``alternatives()`` (made only when the first group is reached): the same choice;
    # never asked where the networks' pose passes
    lazy = robust_pose([Candidate(Start.NETWORK, wrong)], v, est.region, surf, cfg, 6, alternatives=lambda: [Candidate(Start.DIRECT, truth)])
    assert lazy.chosen.start is Start.DIRECT and np.array_equal(lazy.pose.R, fit.pose.R) and lazy.tried == fit.tried
    asked = []
    robust_pose([Candidate(Start.NETWORK, truth)], v, est.region, surf, cfg, 6, alternatives=lambda: asked.append(1) or [])
    assert not asked


def test_joint_shape_refinement_is_default_and_described(reconstructor, frames):
    """By default the checked pose is refined jointly with the identity on the frame's points
    ([shape] of check.toml): the residual does not grow, the identity moves from the network's,
    the expression stays the network's (expression_modes = 0), and the reported check is of the
    returned mesh; refine_shape=0 and --no-refine (refine=0) turn it off."""
    from facerecon.pipeline.check import MeasuredSurface, surface_check

    cfg = check_config().shape
    assert cfg.iterations > 0 and cfg.expression_modes == 0
    f = frames[0]
    rigid = reconstructor.reconstruct(f, refine_shape=0)
    joint = reconstructor.reconstruct(f)
    bare = reconstructor.reconstruct(f, refine=0)
    assert joint.path.shape_iterations == cfg.iterations and joint.chosen.endswith(f"+refine-shape {cfg.iterations}")
    assert rigid.path.shape_iterations == 0 and bare.path.shape_iterations == 0 and bare.path.refine_iterations == 0
    assert joint.check.residual_mm <= rigid.check.residual_mm + 0.05
    assert np.abs(joint.identity - rigid.identity).max() > 1e-3
    np.testing.assert_allclose(joint.expression, rigid.expression)
    again = surface_check(joint.model_vertices_head, joint.pose, reconstructor.pose.region,
                          MeasuredSurface.from_position_image(joint.position_image), reconstructor.pose.check_cfg)
    assert again.residual_mm == pytest.approx(joint.check.residual_mm)
    assert geodesic_distance_deg(joint.pose.R, f.meta["pose_for_eval_only"].R) < 6.0
    # an estimator built for the bare networks (refine=0) gets no joint stage by default either
    from facerecon.pipeline import FramePath, PoseEstimator, Reconstructor
    from facerecon.pipeline.check import Start

    bare_rec = Reconstructor(PoseEstimator(reconstructor.pose.network, reconstructor.model, refine=0), reconstructor.shape, reconstructor.subset)
    assert bare_rec.reconstruct(f).path == FramePath(Start.NETWORK)
