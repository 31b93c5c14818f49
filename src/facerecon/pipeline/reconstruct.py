"""``Reconstructor``: depth frame -> posed metric 3D face (ICT topology) in one call (the pose + shape configuration of :mod:`.frame`).

``locate -> crop -> DAPoseNet (pose) + DAShapeNet (subset offsets) -> fixed upsampling to every
ICT vertex (``ShapeSubset``) -> head-frame mesh -> robust check and rigid refinement of the
pose with this mesh (:mod:`.check`) -> joint pose + identity refinement on the frame's points
(``[shape]`` of ``configs/check.toml``) -> result``.  The confidence, landmark self-check and
face decision describe the returned pose.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..facemodel import FaceModel
from ..facemodel.shape_subset import ShapeSubset
from ..geometry.camera import Intrinsics
from ..nets.decode import OFFSET_UNIT_MM
from .frame import as_frame, locate
from .pose import PoseEstimator, run_all
from .result import FaceResult
from .runtime import Network, blas_threads, load_network, module_network, weights_path


class Reconstructor:
    """``Reconstructor.from_pretrained().reconstruct(depth_mm, intrinsics) -> FaceResult``.

    ``shape``: the shape network as the runtime runs it (:class:`.runtime.Network`, no torch)
    or a torch ``DAShapeNet`` (training, benchmarks)."""

    def __init__(self, pose: PoseEstimator, shape, subset: ShapeSubset):
        self.pose = pose
        self.shape: Network = shape if isinstance(shape, Network) else module_network(shape.eval())
        self.subset = subset
        self.model = subset.model
        # The shape network needs only the position image, not the pose: it runs on a second
        # core while the pose network runs on this one (onnxruntime and torch release the GIL).
        self._shape_worker: ThreadPoolExecutor | None = None
        self.pipeline = pose.make_pipeline(self.shape_weights, self._submit)

    @classmethod
    def from_pretrained(cls, config: str = "fast", pose_path: str | Path | None = None, shape_path: str | Path | None = None,
                        model: FaceModel | None = None, **kw) -> "Reconstructor":
        """The shipped weights of ``config`` (either file may be replaced by a path)."""
        return cls.from_files(pose_path or weights_path("pose", config), shape_path or weights_path("shape", config), model,
                              config=config, **kw)

    @classmethod
    def from_files(cls, pose_path: str | Path, shape_path: str | Path, model: FaceModel | None = None, *,
                   config: str | None = None, **kw) -> "Reconstructor":
        """Pose and shape networks from exported weights or training checkpoints; ``kw`` go to
        :class:`PoseEstimator` (``refine``, ``check``, ``search_others``)."""
        model = model or FaceModel.load()
        pose = PoseEstimator.from_files(pose_path, model, config=config, **kw)
        shape = load_network("shape", shape_path, config)
        subset = ShapeSubset.from_indices(model, np.asarray(shape.meta["subset_vertices"], np.int64))
        return cls(pose, shape, subset)

    def shape_offsets(self, data: np.ndarray) -> np.ndarray:
        """(n, 3) subset offsets in mm: the shape network on one position image."""
        return self.shape(np.asarray(data, np.float32)[None])[0][0] * OFFSET_UNIT_MM

    def shape_weights(self, data: np.ndarray) -> np.ndarray:
        """(n_identity + n_expression,) model weights of the shape network's answer on position image data."""
        return self.subset.weights_from_offsets(self.shape_offsets(data)).astype(np.float64)

    def _submit(self, fn, *args):
        if self._shape_worker is None:
            self._shape_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="facerecon-shape")
        return self._shape_worker.submit(fn, *args)

    def reconstruct(self, depth, intrinsics: Intrinsics | None = None, refine: int | None = None,
                    refine_shape: int | None = None, detail: bool | None = None) -> FaceResult:
        """``refine``: rigid point-to-plane iterations of the reconstructed face onto the
        frame's points after the networks, with the robust check and its fallback
        (``None``: the default of ``configs/check.toml``; 0: the bare networks, only
        checked); ``refine_shape``: then that many Gauss-Newton iterations of pose + identity
        (+ expression where ``[shape] expression_modes`` > 0) on the frame's points, the
        fitter's joint stage started from the networks' shape (``None``: ``[shape]
        iterations`` of ``configs/check.toml`` when ``refine`` is not 0; 0: none); ``detail``: the
        out-of-span correction of the returned surface (None: on; False: the model surface)."""
        # OpenBLAS with the networks' thread count for the frame (its solves are small:
        # measured, refine 98 -> 39 ms and mesh 62 -> 12 ms with one BLAS thread on 2 cores)
        n = self.pose.network.threads
        with blas_threads(n):
            return self.pipeline.run(locate(depth, intrinsics), refine, refine_shape, detail)

    def reconstruct_all(self, depth, intrinsics: Intrinsics | None = None, refine: int | None = None,
                        refine_shape: int | None = None) -> list[FaceResult]:
        """Every face in the frame: the best-ranked head first, then each other head-like region
        (:func:`.frame.other_head_regions`) through the same networks, check and refinement; only
        regions judged a face are kept (the first is returned whatever its decision)."""
        n = self.pose.network.threads
        with blas_threads(n):
            return run_all(self.pipeline, as_frame(depth, intrinsics), refine, refine_shape)


class PosePredictor:
    """What ``facerecon pose`` writes and ``facerecon eval pose --method facerecon`` measures (one
    object, so the two cannot drift apart): the default output (networks + check + rigid
    refinement + joint pose/identity fit) for ``refine`` != 0, the bare pose network (only
    checked) for ``refine`` = 0."""

    def __init__(self, config: str = "fast", refine: int | None = None, search_others: bool = False, model: FaceModel | None = None,
                 check: dict | None = None):
        self.refine = refine
        kind = PoseEstimator if refine == 0 else Reconstructor
        self.engine = kind.from_pretrained(config, model=model, search_others=search_others, check=check)

    def __call__(self, frame) -> FaceResult:
        if isinstance(self.engine, PoseEstimator):
            return self.engine.estimate(frame, refine=0)
        return self.engine.reconstruct(frame, refine=self.refine)

    def all_faces(self, frame) -> list[FaceResult]:
        if isinstance(self.engine, PoseEstimator):
            return self.engine.estimate_all(frame, refine=0)
        return self.engine.reconstruct_all(frame, refine=self.refine)

