"""A local web viewer for reconstructions: ``facerecon view OUT_DIR_OR_GLB``.

A stdlib ``http.server`` on 127.0.0.1 only (a free port by default) serving:

* ``/`` and ``/static/...``: the page (plain HTML + one ES module) and three.js, vendored in
  ``static/vendor`` (no build step, no network: works offline);
* ``/manifest.json``: what the folder holds (GLBs, picture, landmarks, pose, residual map);
* ``/files/<name>``: files of the given folder only, by name from the manifest (no sub-paths,
  so no path traversal);
* ``/derived/input.png``: the input picture behind the mesh: a picture file in the folder, or
  else the input named in ``pose.json`` (read-only): the photo, or the depth frame drawn as a
  colour depth map (its colour image where the frame has one).

Every request must name the server by a loopback ``Host`` (``127.0.0.1:PORT``,
``localhost:PORT`` or ``[::1]:PORT``, as Jupyter checks): any other host name is answered 403,
so a page elsewhere cannot reach the viewer by pointing its own name at 127.0.0.1 (DNS rebinding).
"""
from __future__ import annotations

import io
import json
import mimetypes
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import InputFileError

STATIC = Path(__file__).resolve().parent / "static"
# Pictures to show behind the mesh, first found wins (photo path first, then depth previews).
PICTURE_NAMES = ("photo.png", "photo.jpg", "input.png", "input.jpg", "image.png", "image.jpg", "depth_preview.png", "depth.png")
_TYPES = {".glb": "model/gltf-binary", ".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json",
          ".png": "image/png", ".jpg": "image/jpeg", ".html": "text/html; charset=utf-8", ".txt": "text/plain; charset=utf-8",
          ".css": "text/css"}


@dataclass
class Manifest:
    root: Path
    glbs: list[str]
    picture: str | None = None  # a file name in root, or "derived" (drawn from the depth frame)
    landmarks: str | None = None
    pose: str | None = None
    residual: str | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"glbs": [f"files/{g}" for g in self.glbs],
                "picture": None if self.picture is None else ("derived/input.png" if self.picture == "derived" else f"files/{self.picture}"),
                "landmarks": self.landmarks and f"files/{self.landmarks}", "pose": self.pose and f"files/{self.pose}",
                "residual": self.residual and f"files/{self.residual}", "folder": self.root.name, **self.extra}


def _glb_order(name: str) -> tuple:
    # the camera-frame face first, then animations, then the head-frame copy, then anything else
    return (name != "face.glb", not name.startswith("anim"), name == "face_head.glb", name)


def scan(path: str | Path, main_glb: str | None = None) -> Manifest:
    """What to show for a reconstruct output folder, or a GLB (its folder is served)."""
    p = Path(path)
    if p.is_file():
        if p.suffix.lower() != ".glb":
            raise InputFileError(p, "expected a .glb file or a folder written by facerecon reconstruct")
        root, main_glb = p.parent, p.name
    elif p.is_dir():
        root = p
    else:
        raise InputFileError(p, "no such file or folder")
    root = root.resolve()
    glbs = sorted((f.name for f in root.glob("*.glb") if f.is_file()), key=_glb_order)
    if main_glb is not None:
        glbs = [main_glb] + [g for g in glbs if g != main_glb]
    if not glbs:
        raise InputFileError(p, "no .glb in the folder (write one with facerecon reconstruct --format glb)")
    m = Manifest(root, glbs)
    for name in PICTURE_NAMES:
        if (root / name).is_file():
            m.picture = name
            break
    if (root / "landmarks.json").is_file():
        m.landmarks = "landmarks.json"
    if (root / "pose.json").is_file():
        m.pose = "pose.json"
        if m.picture is None and _frame_path(root) is not None:
            m.picture = "derived"
    if (root / "overlay.png").is_file():
        m.residual = "overlay.png"
    return m


def _frame_path(root: Path) -> Path | None:
    try:
        doc = json.loads((root / "pose.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    frame = doc.get("frame") if isinstance(doc, dict) else None
    if not isinstance(frame, str):
        return None
    f = Path(frame)
    if not f.is_absolute():
        # reconstruct records the path as given on its command line: relative to where it ran;
        # try the folder's ancestors too
        for base in [Path.cwd(), *root.parents]:
            if (base / f).is_file():
                return base / f
        return None
    return f if f.is_file() else None


def derived_picture(root: Path) -> bytes | None:
    """PNG of the input named in pose.json: a photo as it is (upright, as the photo path read it), a
    depth frame as a colour depth map (or its colour image where it has one); None if unreadable."""
    from PIL import Image

    from ..errors import FaceReconError
    from ..io import read_depth
    from ..photo.image import is_photo_file, read_photo
    from ..viz.depthmap import depth_to_rgb

    f = _frame_path(root)
    if f is None:
        return None
    try:
        if is_photo_file(f):
            rgb = read_photo(f).rgb
        else:
            frame = read_depth(f)
            colour = getattr(frame, "color", None)
            ok = colour is not None and getattr(colour, "shape", (0,))[:2] == frame.depth_mm.shape
            rgb = colour if ok else depth_to_rgb(frame.depth_mm)
    except FaceReconError:
        return None
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def host_allowed(host: str | None, port: int) -> bool:
    """Whether a request's ``Host`` header names this server by a loopback name and its port
    (DNS-rebinding guard: a rebound name arrives with that name in ``Host``)."""
    if not host:
        return False
    name, sep, p = host.strip().lower().rpartition(":")
    if not sep or name not in LOOPBACK_HOSTS:
        return False
    return p == str(port)


class _Handler(BaseHTTPRequestHandler):
    server: "ViewerServer"

    protocol_version = "HTTP/1.1"  # keep-alive: every response has a Content-Length

    def log_message(self, format, *args):  # quiet: the CLI prints the URL, not every request
        pass

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        # no-cache, not no-store: Chromium reports a streamed no-store fetch that reached its end as
        # aborted (microsoft/playwright#42742), which three.js' FileLoader does for every GLB
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _not_found(self) -> None:
        self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")

    def _file(self, path: Path) -> None:
        try:
            body = path.read_bytes()
        except OSError:
            return self._not_found()
        ctype = _TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self._send(HTTPStatus.OK, body, ctype)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        srv = self.server
        if not host_allowed(self.headers.get("Host"), srv.server_address[1]):
            return self._send(HTTPStatus.FORBIDDEN, b"forbidden: the viewer answers only to 127.0.0.1, localhost or [::1]\n",
                              "text/plain; charset=utf-8")
        route = unquote(urlparse(self.path).path)
        if route in ("/", "/index.html"):
            return self._file(STATIC / "index.html")
        if route == "/manifest.json":
            return self._send(HTTPStatus.OK, json.dumps(srv.manifest.to_json()).encode(), "application/json")
        if route.startswith("/static/"):
            target = (STATIC / route[len("/static/"):]).resolve()
            if STATIC not in target.parents or not target.is_file():
                return self._not_found()
            return self._file(target)
        if route.startswith("/files/"):
            name = route[len("/files/"):]
            # only the names the manifest lists: no sub-folders, no "..", nothing else of the disk
            if name not in srv.allowed:
                return self._not_found()
            return self._file(srv.manifest.root / name)
        if route == "/derived/input.png" and srv.manifest.picture == "derived":
            png = srv.derived()
            return self._send(HTTPStatus.OK, png, "image/png") if png else self._not_found()
        return self._not_found()


class ViewerServer(ThreadingHTTPServer):
    """The viewer's HTTP server, bound to 127.0.0.1 only."""

    daemon_threads = True

    def __init__(self, manifest: Manifest, port: int = 0):
        self.manifest = manifest
        self.allowed = {v for v in [*manifest.glbs, manifest.picture, manifest.landmarks, manifest.pose, manifest.residual]
                        if v and v != "derived"}
        self._derived: bytes | None = None
        self._lock = threading.Lock()
        super().__init__(("127.0.0.1", int(port)), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def derived(self) -> bytes | None:
        with self._lock:
            if self._derived is None:
                self._derived = derived_picture(self.manifest.root) or b""
            return self._derived or None


def start(path: str | Path, port: int = 0) -> tuple[ViewerServer, threading.Thread]:
    """Serve ``path`` in a background thread (for tests and embedding); ``server.shutdown()`` stops it."""
    srv = ViewerServer(scan(path), port)
    th = threading.Thread(target=srv.serve_forever, name="facerecon-viewer", daemon=True)
    th.start()
    return srv, th
