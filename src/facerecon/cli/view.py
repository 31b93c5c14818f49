"""``facerecon view``: look at a reconstruction (or any rigged GLB) in the browser."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console(stderr=True)


def view_cmd(
    path: Path = typer.Argument(..., help="A reconstruct output folder (face.glb, pose.json, landmarks.json, overlay.png) or a .glb."),
    port: int = typer.Option(0, help="Port on 127.0.0.1 (0 = any free port)."),
    browser: bool = typer.Option(True, "--browser/--no-browser", help="Open the page in the default browser."),
) -> None:
    """Serve a local page (127.0.0.1 only, works offline): the mesh over the input picture, orbit controls, one slider
    per ARKit expression, play/pause for animations, landmarks and residual map toggles, pose and timings. Ctrl-C stops it."""
    import webbrowser

    from ..errors import ConfigError
    from ..viewer import ViewerServer, scan

    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {port}")
    manifest = scan(path)
    try:
        srv = ViewerServer(manifest, port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc})") from None
    console.print(f"facerecon viewer: {srv.url}  (serving {manifest.root}; Ctrl-C to stop)", markup=False)
    print(srv.url, flush=True)
    if browser:
        webbrowser.open(srv.url)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


def register(app: typer.Typer) -> None:
    app.command("view")(view_cmd)
