"""Seeded mutation fuzzing of every public reader (``facerecon.evaluate.fuzz``), short run.

The contract: a value or a ``FaceReconError``, under the per-case time and memory caps,
whatever the bytes.  ``benchmarks/fuzz.py --cases 20000`` runs the long version in
worker processes; the cases here are the same function of (seed, index), so a failure
found there replays here by index.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from facerecon.evaluate import fuzz

CASES_PER_READER = 120


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, real_dir: Path):
    return fuzz.build_corpus(tmp_path_factory.mktemp("seeds"), real_dir)


def test_the_seeds_are_read(corpus, tmp_path: Path) -> None:
    """Unmutated seeds: every valid one is read (else the fuzzer would start from junk)."""
    readers = fuzz._readers()
    hostile = {"deep.ply", "wrongtype.ply", "huge_00002_depth.bin"}
    for seed in corpus:
        for name, (kinds, _) in readers.items():
            if seed.kind not in kinds:
                continue
            case = fuzz.Case(0, name, seed.name, seed.name, seed.data)
            out = fuzz.run_case(case, tmp_path, extra_files=fuzz.companions(corpus, case), trace_memory=False)
            unorganised = seed.name == "points.pcd" or seed.name.startswith("real_object_template")
            expect = "ok"
            if (seed.name in hostile and name != "read_ply_elements") or (unorganised and name in ("read_depth", "read_pcd")):
                expect = "refused"  # hostile on purpose / an unorganised cloud needs intrinsics
            if name == "read_ply_cloud" and seed.kind == "truedepth":
                expect = "refused"  # a frame has no vertices
            if name == "read_ply_elements" and seed.kind == "plymesh":
                expect = "refused"  # binary list properties (faces): meshes go through read_mesh
            if name == "read_pcd(intrinsics)" and seed.name.startswith("real_object_template"):
                continue  # the templates project outside the tiny test camera: refusal or a frame, both fine
            assert out.kind == expect, (name, seed.name, out.detail)


def test_fuzz_every_reader(corpus, tmp_path: Path) -> None:
    n = CASES_PER_READER * len(fuzz.READER_NAMES)
    results = fuzz.run_cases(corpus, range(n), tmp_path, master_seed=15)
    kinds = Counter(r.kind for r in results)
    bad = [r for r in results if r.kind not in ("ok", "refused")]
    report = "\n".join(f"case {r.index} {r.reader} {r.seed} {r.mutations}: {r.kind} {r.detail}" for r in bad[:20])
    assert not bad, f"{len(bad)} of {n} cases broke the contract ({dict(kinds)}):\n{report}"
    per_reader = Counter(r.reader for r in results)
    assert set(per_reader) == set(fuzz.READER_NAMES) and min(per_reader.values()) == CASES_PER_READER
    # the mutations are not all fatal: part of them still read (deeper code is reached)
    assert kinds["ok"] > 0.05 * n and kinds["refused"] > 0.5 * n, dict(kinds)
    assert max(r.peak_bytes for r in results) < fuzz.MEMORY_CAP_BYTES


def test_cases_are_deterministic(corpus) -> None:
    a = [fuzz.make_case(corpus, i, master_seed=3) for i in range(40)]
    b = [fuzz.make_case(corpus, i, master_seed=3) for i in range(40)]
    assert [(c.reader, c.name, c.data) for c in a] == [(c.reader, c.name, c.data) for c in b]
    c = [fuzz.make_case(corpus, i, master_seed=4) for i in range(40)]
    assert [x.data for x in a] != [x.data for x in c]


def test_the_harness_catches_crashes_hangs_and_memory(corpus, tmp_path: Path, monkeypatch) -> None:
    """The fuzzer would see a broken reader: an escaping exception, a stuck loop, a huge allocation."""
    import time

    import numpy as np

    case = fuzz.make_case(corpus, 0)
    name = case.reader

    def crash(path):
        raise TypeError("not in the family")

    def hang(path):
        while True:
            time.sleep(0.01)

    def hog(path):
        return np.ones(16 * 2**20)  # 128 MiB, over a 64 MiB cap

    for fn, kind, kw in ((crash, "crash", {}), (hang, "hang", {"time_cap_s": 0.3}), (hog, "memory", {"memory_cap": 64 * 2**20})):
        monkeypatch.setattr(fuzz, "_readers", lambda fn=fn: {name: (("png",), fn)})
        assert fuzz.run_case(case, tmp_path, **kw).kind == kind
