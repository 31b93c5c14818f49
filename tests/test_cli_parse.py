"""The command line's values without pydantic (cli ``_coercion_without_pydantic``): every parameter of every
command converts a value as typer's own pydantic adapter does, or hands it to that adapter (same value, same
error); the per-frame commands parse without importing pydantic."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

typer_main = pytest.importorskip("typer.main")
_coercion = pytest.importorskip("typer._coercion")
if not hasattr(_coercion, "build_runtime_param"):
    pytest.skip("typer without pydantic adapters (< 0.29)", allow_module_level=True)

from facerecon.cli import _NOT_PLAIN, _plain_value, get_app  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

SAMPLES = {
    str: ["abc", "", " x ", "1", "obj,glb", "é", 5],
    bool: [True, False, "true", "0", ""],
    int: [0, 5, -3, "5", "-3", "0", "-0", "007", " 5", "5.0", "1_000", "+4", "abc", "", "99999999999999999999", 2.0, True],
    float: [1.5, 2, -7, "2", "2.5", "-0.125", "0.1", "-0", "-0.0", "0.0", "1e3", "nan", "inf", ".5", "5.", "abc", "", " 1", True,
            "123456789012345.123456789012345"],
}


def _path_samples(tmp: Path) -> list:
    (tmp / "f.ply").write_bytes(b"x")
    return [str(tmp / "f.ply"), str(tmp), str(tmp / "missing.ply"), "", "-", "rel/x.npz", tmp / "f.ply", 3]


def _outcome(fn):
    try:
        v = fn()
        return ("value", type(v), repr(v) if not isinstance(v, list) else [(type(i), repr(i)) for i in v])
    except Exception as exc:  # noqa: BLE001 - the error itself is compared
        return ("error", type(exc), str(exc))


def _params():
    cmd = typer_main.get_command(get_app())
    for name, sub in cmd.commands.items():
        for sub_name, c in (sub.commands.items() if hasattr(sub, "commands") else [(name, sub)]):
            for p in c.params:
                if getattr(p, "type_descriptor", None) is not None:
                    yield f"{sub_name} {p.name}", c, p


def test_every_parameter_converts_as_typers_own_adapter(tmp_path):
    paths = _path_samples(tmp_path)
    checked = 0
    plain = 0
    for label, command, p in _params():
        desc = p.type_descriptor
        ctx = typer_main._click.Context(command)
        mine = p.get_runtime_param()  # the CLI's (installed by get_app)
        assert mine is not None and type(mine).__name__ == "PlainFirst", (label, type(mine))
        own = _coercion.build_runtime_param(desc)  # typer's, with its pydantic adapter
        ann = desc.annotation
        item = ann.__args__[0] if getattr(ann, "__origin__", None) is list else ann
        values = paths if isinstance(item, type) and issubclass(item, Path) else SAMPLES.get(item, [])
        if item is not ann:  # lists: several items, one item, a lone value
            values = [list(values[:3]), tuple(values[:1]), values[0], values[:3] + [None]]
        assert values, f"{label}: no samples for {ann!r}"
        for v in values:
            got = _outcome(lambda: mine.coerce(v, param=p, ctx=ctx))
            want = _outcome(lambda: own.coerce(v, param=p, ctx=ctx))
            assert got == want, (label, v, got, want)
            checked += 1
            plain += _plain_value(ann, desc.parameter_info, v, p, ctx) is not _NOT_PLAIN
    assert checked > 500 and plain > 200, (checked, plain)  # most valid values take the plain path


PARSE_ONLY = """
import functools, json, sys
import facerecon.cli as cli
import facerecon.cli.reconstruct as r
seen = {}
@functools.wraps(r.reconstruct_cmd)  # typer reads the options from the signature
def stop(*a, **k):
    seen.update(k)
    raise SystemExit(0)
r.reconstruct_cmd = stop  # what register() puts in the app
try:
    cli._main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps({"pydantic": sorted(m for m in sys.modules if m.split(".")[0] == "pydantic"),
                  "values": {k: repr(v) for k, v in seen.items()}}))
"""


def test_reconstruct_parses_without_pydantic(tmp_path):
    frame = tmp_path / "frame.ply"
    frame.write_bytes(b"x")
    args = ["reconstruct", str(frame), str(tmp_path), "-o", str(tmp_path / "out"), "--camera", "kinect-v1",
            "--refine", "4", "--focal", "500.5", "--no-overlay", "--set", "shape.iterations=3"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-c", PARSE_ONLY, *args], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["pydantic"] == [], got["pydantic"][:5]
    values = got["values"]
    assert values["frames"] == repr([frame, tmp_path]) and values["out"] == repr(tmp_path / "out")
    assert values["refine"] == "4" and values["focal"] == "500.5" and values["overlay"] == "False"
    assert values["set_"] == repr(["shape.iterations=3"]) and values["camera"] == "'kinect-v1'"


@pytest.mark.parametrize("args", [
    ["reconstruct", "--help"], ["pose", "--help"], ["track", "--help"], ["reconstruct"],
    ["reconstruct", "x.ply"], ["reconstruct", "x.ply", "-o", "out", "--refine", "abc"],
    ["reconstruct", "x.ply", "-o", "out", "--bogus"], ["track", "--no-such-flag"], ["pose"],
])
def test_a_per_frame_command_alone_says_what_the_full_app_says(args, capsys, monkeypatch):
    """`facerecon reconstruct|pose|track ...` builds that command alone (cli ``_app_for``): the same usage lines,
    help, errors and exit codes as the app with every topic."""
    import facerecon.cli as cli

    assert cli._app_for(args) is not cli.get_app()  # the command alone
    rc_solo = cli.main(args)
    solo = capsys.readouterr()
    monkeypatch.setattr(cli, "_SOLO_COMMANDS", ())
    assert cli._app_for(args) is cli.get_app()
    rc_full = cli.main(args)
    full = capsys.readouterr()
    assert (rc_solo, solo.out, solo.err) == (rc_full, full.out, full.err)
    assert rc_solo in (0, 2)
