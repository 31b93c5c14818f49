"""CLI batch behaviour (issue 15): one line per failure naming the path once, folders named
like files, exit codes, no traceback for any input, atomic frame folders."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from facerecon.cli import main
from facerecon.cli._frames import (
    EXIT_FAILED,
    EXIT_NO_FACE,
    EXIT_OK,
    EXIT_PARTIAL,
    batch_exit_code,
    expand_inputs,
    failure_text,
)
from facerecon.errors import ConfigError, FaceReconError, InputFileError
from facerecon.fileutil import atomic_dir


def _err_lines(capsys) -> list[str]:
    return [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


@pytest.fixture
def stub_pose(monkeypatch):
    """`facerecon pose` with a stand-in estimator: these tests are about the batch, not the networks."""
    from types import SimpleNamespace

    import facerecon.export.pose_json as pose_json
    import facerecon.pipeline.reconstruct as reconstruct

    def result(frame):
        pose = SimpleNamespace(euler_deg=(0.0, 0.0, 0.0), t_mm=np.array([0.0, 0.0, 600.0]))
        return SimpleNamespace(face=True, reason="", pose=pose, confidence=0.9, timings_ms={"total": 1.0}, location=None)

    class Stub:  # what `facerecon pose` runs (PosePredictor)
        def __init__(self, *args, **kwargs):
            pass

        def __call__(self, frame):
            return result(frame)

        def all_faces(self, frame):
            return [result(frame)]

    monkeypatch.setattr(reconstruct, "PosePredictor", Stub)
    monkeypatch.setattr(pose_json, "depth_document", lambda res, frame, method, *a, **k: {"face": True, "stub": True})
    return Stub


def test_batch_exit_codes() -> None:
    assert batch_exit_code(3, 0, 0) == EXIT_OK == 0
    assert batch_exit_code(3, 1, 0) == batch_exit_code(3, 0, 2) == batch_exit_code(3, 1, 1) == EXIT_PARTIAL == 4
    assert batch_exit_code(3, 3, 0) == EXIT_FAILED == 1
    assert batch_exit_code(3, 0, 3) == batch_exit_code(3, 2, 1) == EXIT_NO_FACE == 3


def test_failure_text_names_the_path_once(tmp_path: Path) -> None:
    p = tmp_path / "a.pcd"
    assert failure_text(p, InputFileError(p, "no such file")) == "no such file"
    cal = tmp_path / "depth.cal"
    assert failure_text(p, InputFileError(cal, "bad")) == f"{cal}: bad"  # another file: named
    assert failure_text(p, ConfigError(f"{p}: the file has no intrinsics")) == "the file has no intrinsics"
    assert failure_text(p, OSError(28, "No space left on device", str(tmp_path / "o.obj"))).endswith("No space left on device")
    assert failure_text(p, RuntimeError("boom")).startswith("unexpected RuntimeError: boom")


def test_missing_file_is_named_once(tmp_path: Path, capsys, stub_pose) -> None:
    missing = tmp_path / "missing.pcd"
    rc = main(["pose", str(missing)])
    lines = [ln for ln in _err_lines(capsys) if "missing.pcd" in ln]
    assert rc == EXIT_FAILED and len(lines) == 1, lines
    assert lines[0].count(str(missing)) == 1 and "no such file" in lines[0]


def test_folder_named_like_a_file_is_an_error_not_an_empty_batch(tmp_path: Path, capsys, stub_pose) -> None:
    d = tmp_path / "frames.png"
    d.mkdir()
    (d / "a.png").write_bytes(b"")  # even with frames inside: it was named as a file
    assert expand_inputs([d]) == [d]
    rc = main(["pose", str(d)])
    err = " ".join(_err_lines(capsys))
    assert rc == EXIT_FAILED and "is a directory" in err and "Traceback" not in err
    empty = tmp_path / "nothing"
    empty.mkdir()
    with pytest.raises(InputFileError, match="holds no depth frames"):
        expand_inputs([empty])
    rc = main(["pose", str(empty)])
    err = _err_lines(capsys)
    assert rc == EXIT_FAILED and len(err) == 1 and "holds no depth frames" in err[0]


def test_partial_batch_goes_on_and_exits_4(tmp_path: Path, real_dir: Path, capsys, stub_pose) -> None:
    good = real_dir / "kinect-pcl" / "person.pcd"
    bad = tmp_path / "broken.npy"
    bad.write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': (\n")  # the tokenize.TokenError header
    folder = tmp_path / "frames.npz"
    folder.mkdir()
    rc = main(["pose", str(bad), str(folder), str(good), "-o", str(tmp_path / "out")])
    err = _err_lines(capsys)
    assert rc == EXIT_PARTIAL, err
    assert json.loads((tmp_path / "out" / "person.pose.json").read_text())["stub"]  # the frame after the failures was done
    assert sum("broken.npy" in ln for ln in err) == 1 and sum("frames.npz" in ln for ln in err) == 1
    assert any("2 of 3 frames failed" in ln for ln in err) and not any("Traceback" in ln for ln in err)


def test_unexpected_exception_is_one_line_without_traceback(tmp_path: Path, capsys, monkeypatch) -> None:
    import facerecon.cli._frames as frames

    def boom(inputs):
        raise RuntimeError("nobody foresaw this")

    monkeypatch.setattr(frames, "expand_inputs", boom)
    rc = main(["pose", str(tmp_path / "x.pcd")])
    err = _err_lines(capsys)
    assert rc == 1 and len(err) == 1 and "unexpected RuntimeError: nobody foresaw this" in err[0], err
    monkeypatch.setenv("FACERECON_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["pose", str(tmp_path / "x.pcd")])


# -- atomic frame folders --------------------------------------------------------------


def test_atomic_dir_complete_or_absent(tmp_path: Path) -> None:
    target = tmp_path / "out" / "frame-001"
    with atomic_dir(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".frame-001.part-")
        (tmp / "face.obj").write_text("v 0 0 0\n")
        assert not target.exists()  # not visible until complete
    assert sorted(os.listdir(target.parent)) == ["frame-001"] and (target / "face.obj").is_file()
    assert target.stat().st_mode & 0o777 == 0o777 & ~_umask()
    # a failure (or Ctrl-C) inside keeps the previous folder untouched and leaves nothing else
    for exc in (RuntimeError, KeyboardInterrupt):
        with pytest.raises(exc), atomic_dir(target) as tmp:
            (tmp / "face.obj").write_text("half")
            raise exc()
        assert sorted(os.listdir(target.parent)) == ["frame-001"] and (target / "face.obj").read_text() == "v 0 0 0\n"
    # an existing folder is replaced as a whole: no stale files from the earlier run
    with atomic_dir(target) as tmp:
        (tmp / "pose.json").write_text("{}")
    assert os.listdir(target) == ["pose.json"] and sorted(os.listdir(target.parent)) == ["frame-001"]


def test_atomic_dir_cleans_what_a_killed_process_left(tmp_path: Path) -> None:
    dead = tmp_path / f".frame.part-{_dead_pid()}-abc123"
    dead.mkdir()
    (dead / "face.obj").write_text("half")
    alive = tmp_path / f".frame.part-{os.getpid()}-zzz"  # this process: in use, kept
    alive.mkdir()
    other = tmp_path / f".other.part-{_dead_pid()}-abc123"  # another frame's: not ours to judge now
    other.mkdir()
    with atomic_dir(tmp_path / "frame") as tmp:
        (tmp / "a").write_text("1")
    assert not dead.exists() and alive.exists() and other.exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(FaceReconError, match="not a folder"), atomic_dir(tmp_path / "file"):
        pass


def test_interrupted_reconstruct_leaves_no_part_files_and_no_half_folder(tmp_path: Path, real_dir: Path, monkeypatch, capsys) -> None:
    """SIGTERM while the second frame's files are being written: frame 1 complete, frame 2 absent."""
    import facerecon.export as export

    frames = real_dir / "truedepth-mannequin" / "DepthFrames"
    inputs = [str(frames / "frame-045.ply"), str(frames / "frame-048.ply"), str(frames / "frame-051.ply")]
    real_write_json = export.write_json

    def write_json_then_die(path, data):
        real_write_json(path, data)
        if Path(path).parent.name.startswith(".frame-048.part-"):  # a file of frame 2 written, the rest not yet
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(export, "write_json", write_json_then_die)
    out = tmp_path / "out"
    before = signal.getsignal(signal.SIGTERM)
    rc = main(["reconstruct", *inputs, "-o", str(out), "--format", "obj", "--no-overlay"])
    err = capsys.readouterr().err
    assert rc == 130, err
    assert "interrupted after 1 of 3 frames" in err, err  # how far it got, before main's "interrupted"
    assert signal.getsignal(signal.SIGTERM) is before  # main() restores the handler
    names = sorted(os.listdir(out))
    assert names == ["frame-045"], names  # frame-048 absent, not half-filled; no .part folders
    assert not list(out.rglob("*.part*")) and not list(out.rglob(".*"))
    assert json.loads((out / "frame-045" / "pose.json").read_text())["frame"] == inputs[0]


def _umask() -> int:
    u = os.umask(0)
    os.umask(u)
    return u


def _dead_pid() -> int:
    """A process id that is not running (a reaped child's)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_intrinsics_usage_errors_are_said_once(tmp_path: Path, capsys, stub_pose) -> None:
    np.save(tmp_path / "a.npy", np.full((4, 4), 600.0))
    np.save(tmp_path / "b.npy", np.full((4, 4), 600.0))
    rc = main(["pose", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--camera", "nokia"])
    err = _err_lines(capsys)
    assert rc == 1 and len(err) == 1 and "nokia" in err[0], err
    rc = main(["pose", str(tmp_path / "a.npy"), "--intrinsics", "inf,525,2,2", "--unit", "mm"])
    err = [ln for ln in _err_lines(capsys) if "a.npy" in ln]
    assert rc == 1 and len(err) == 1 and "not finite" in err[0], err


def test_no_traceback_for_fuzzed_inputs(tmp_path: Path, real_dir: Path, capsys) -> None:
    """The CLI on mutated depth files: exit 0 or 1, one error line, never a traceback."""
    from facerecon.evaluate import fuzz

    corpus = fuzz.build_corpus(tmp_path / "seeds", real_dir)
    n = 0
    for i in range(0, 15 * 40, 15):  # read_depth's turns
        case = fuzz.make_case(corpus, i, master_seed=7)
        assert case.reader == "read_depth"
        folder = tmp_path / f"c{i}"
        folder.mkdir()
        for name, blob in fuzz.companions(corpus, case).items():
            (folder / name).write_bytes(blob)
        (folder / case.name).write_bytes(case.data)
        rc = main(["view-depth", str(folder / case.name), "-o", str(folder / "preview.png")])
        err = capsys.readouterr().err
        assert rc in (0, 1), (i, case.mutations, err)
        assert "Traceback" not in err, (i, err)
        if rc == 1:
            assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1, (i, err)
            n += 1
    assert n > 10  # most mutations are refused


def test_interrupt_says_how_far_the_batch_got() -> None:
    """Ctrl-C in run_batch: one line "interrupted after N of M frames", then the interrupt goes on (exit 130)."""
    import io

    from rich.console import Console

    from facerecon.cli._frames import run_batch

    buf = io.StringIO()
    console = Console(file=buf, width=200)
    seen = []

    def handle(path, _):
        if len(seen) == 3:
            raise KeyboardInterrupt
        seen.append(path)
        return None

    items = [(Path(f"f{i}.png"), None, None) for i in range(5)]
    items[1] = (Path("f1.png"), None, "unreadable")
    with pytest.raises(KeyboardInterrupt):
        run_batch(console, "frames", iter(items), len(items), handle)
    lines = [ln for ln in buf.getvalue().splitlines() if "interrupted" in ln]
    assert len(lines) == 1 and lines[0].startswith("interrupted after 4 of 5 frames, 1 failed;"), buf.getvalue()


def test_interrupted_track_says_how_far_it_got(tmp_path: Path, monkeypatch, capsys) -> None:
    """Ctrl-C during `facerecon track`: "interrupted after N of M frames", exit 130 (stand-in tracker)."""
    from types import SimpleNamespace

    import facerecon.tracking as tracking

    class Tracker:
        @classmethod
        def from_pretrained(cls, *a, **k):
            return cls()

        def run(self, seq):
            for i in range(3):
                yield SimpleNamespace(name=f"f{i}"), SimpleNamespace(tracked=True, message="")
            raise KeyboardInterrupt

    monkeypatch.setattr(tracking, "Tracker", Tracker)
    monkeypatch.setattr(tracking, "open_sequence", lambda *a, **k: SimpleNamespace(length=10))
    rc = main(["track", str(tmp_path), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 130 and "interrupted after 3 of 10 frames; nothing written" in err, err
