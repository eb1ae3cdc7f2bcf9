"""``make screenshot``: the README's picture of the kanban board, taken from the real suite.

Starts the whole suite exactly as ``make run`` does (``python -m okr_services.run``: the
migration, the four nameko services, the outbox relay, the gRPC gateway and the demo
company seeded through the API) on a fresh data folder in a temporary directory, waits
until the reporting service has applied every stored event, opens
``http://<WEB_SERVER_ADDRESS>/board/<tenant>`` in Debian's headless Chromium (driven by
Playwright, as tests/browser does; never ``playwright install``), saves a PNG, then stops
the suite (SIGINT, as Ctrl-C) and removes the temporary data.

    .venv/bin/python scripts/screenshot_board.py                  # -> docs/img/board.png
    .venv/bin/python scripts/screenshot_board.py --out /tmp/b.png --width 1600 --height 1000

Environment: ``AMQP_URI`` (the RabbitMQ the suite uses, as for ``make run``; point it at a
vhost of your own on a shared broker), ``OKR_DEMO_TENANT`` (default ``demo``),
``OKR_CHROMIUM`` (default ``/usr/bin/chromium``; ``make browser`` installs it). The
gateway and the board listen on free ports of 127.0.0.1 picked at start (``--web-port``,
``--gateway-port`` to choose). Exit status 0 with the path and size of the PNG on
stdout; otherwise 1 and one line saying what failed (the suite's logs are kept and named
when the suite is at fault).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars", "--font-render-hinting=none"]
#: The README wants a light file; a bigger one means the page or the viewport changed a lot.
MAX_BYTES = 300_000


class Failed(Exception):
    """One line for the user: what went wrong and where to look."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chromium_path() -> str:
    name = os.environ.get("OKR_CHROMIUM", "/usr/bin/chromium")
    path = name if os.path.isabs(name) else shutil.which(name)
    if not path or not os.access(path, os.X_OK):
        raise Failed(f"Chromium not found at {name!r}: `make browser` installs Debian's (root), or set OKR_CHROMIUM")
    return path


def wait_for(predicate, timeout: float, what: str, alive=None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if alive is not None and not alive():
            raise Failed(f"the suite stopped while waiting for {what}")  # its last words: main() adds them
        if time.monotonic() > deadline:
            raise Failed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


class CatchUp:
    """Whether the reporting service's offset has reached the event store's head (read
    from the suite's SQLite files, as tests/browser's ``stack.caught_up()`` does)."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.store = self.reporting = None

    def __call__(self) -> bool:
        from okr_shared.eventstore import EventStore, make_engine
        from okr_services.reporting import storage

        try:
            if self.store is None:
                self.store = EventStore(make_engine(f"sqlite:///{self.data_dir / 'okr.db'}"))
                self.reporting = make_engine(f"sqlite:///{self.data_dir / 'reporting.db'}")
            head = self.store.head_position()
            with self.reporting.connect() as conn:
                offset = storage.offset_of(conn) or 0
        except Exception:  # noqa: BLE001 - a table not created yet: ask again
            return False
        return head > 0 and offset >= head

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store.engine.dispose()
            self.reporting.dispose()


def shoot(url: str, out: Path, width: int, height: int, full_page: bool) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, timeout=30_000)
        try:
            page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=1,
                                    color_scheme="light", locale="en-GB")
            response = page.goto(url, wait_until="load", timeout=30_000)
            if response is None or response.status != 200:
                raise Failed(f"GET {url} answered {response.status if response else 'nothing'}")
            if page.locator(".card").count() == 0:
                raise Failed(f"the board at {url} shows no card (was the demo company seeded?)")
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=full_page, type="png")
        finally:
            browser.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "board.png", help="PNG to write")
    ap.add_argument("--width", type=int, default=1440, help="viewport width in CSS pixels (default 1440)")
    ap.add_argument("--height", type=int, default=900, help="viewport height (default 900)")
    ap.add_argument("--full-page", action="store_true", help="the whole page, not only the first screen")
    ap.add_argument("--web-port", type=int, default=0, help="the board's port (default: a free one)")
    ap.add_argument("--gateway-port", type=int, default=0, help="the gRPC gateway's port (default: a free one)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds for each wait: the suite ready, then caught up")
    args = ap.parse_args(argv)
    if args.width < 320 or args.height < 200:
        ap.error("--width must be at least 320 and --height at least 200")

    try:
        chromium_path()  # before a minute of start-up, not after
        import playwright.sync_api  # noqa: F401
    except (Failed, ImportError) as e:
        print(f"screenshot: {e}", file=sys.stderr)
        return 1
    tenant = os.environ.get("OKR_DEMO_TENANT", "demo")
    web = f"127.0.0.1:{args.web_port or free_port()}"
    gateway = f"127.0.0.1:{args.gateway_port or free_port()}"
    tmp = Path(tempfile.mkdtemp(prefix="okr-screenshot-"))
    data_dir, log_path = tmp / "data", tmp / "run.log"
    env = dict(os.environ, OKR_DATA_DIR=str(data_dir), OKR_GATEWAY_ADDRESS=gateway, WEB_SERVER_ADDRESS=web,
               PYTHONPATH=os.pathsep.join([str(ROOT / "shared"), str(ROOT / "services"),
                                           os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    for name in ("OKR_DATABASE_URL", "OKR_REPORTING_DATABASE_URL", "OKR_NOTIFICATION_DATABASE_URL",
                 "OKR_GATEWAY_DATABASE_URL"):  # run.py puts them all under OKR_DATA_DIR
        env.pop(name, None)
    sys.path[:0] = [str(ROOT / "shared"), str(ROOT / "services")]
    keep_logs = False
    with open(log_path, "w") as log:
        suite = subprocess.Popen([sys.executable, "-m", "okr_services.run"], env=env, cwd=ROOT, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def alive() -> bool:
            return suite.poll() is None

        print(f"screenshot: starting the suite (data {data_dir}, board on {web}, gRPC on {gateway})", flush=True)
        wait_for(lambda: "ready" in log_path.read_text(), args.timeout, "the suite to be ready", alive)
        catch_up = CatchUp(data_dir)
        try:
            wait_for(catch_up, args.timeout, "the reporting service to apply every event", alive)
        finally:
            catch_up.close()
        url = f"http://{web}/board/{tenant}"
        shoot(url, args.out, args.width, args.height, args.full_page)
        size = args.out.stat().st_size
        print(f"screenshot: {url} -> {args.out} ({size:,} bytes, {args.width}x{args.height})", flush=True)
        if size > MAX_BYTES:
            print(f"screenshot: warning: {size:,} bytes is more than {MAX_BYTES:,}; a smaller viewport keeps the "
                  "README light", file=sys.stderr)
        return 0
    except Failed as e:
        keep_logs = True
        last = [line for line in log_path.read_text().splitlines() if line.strip()][-1:]
        print(f"screenshot: {e}; suite log: {log_path}, service logs: {data_dir / 'logs'}"
              + (f"\nscreenshot: the suite's last line: {last[0]}" if last else ""), file=sys.stderr)
        return 1
    finally:
        if suite.poll() is None:
            suite.send_signal(signal.SIGINT)  # Ctrl-C: run.py stops its children cleanly
            try:
                suite.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(suite.pid, signal.SIGKILL)
                suite.wait()
        if not keep_logs:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
