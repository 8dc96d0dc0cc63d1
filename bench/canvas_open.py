"""The journey canvas in a real browser: how long a 300-node journey takes to open, and the frame
times while a step is dragged across it.

Builds ``cdp_bench_canvas`` (dropped and recreated): the demo company's users and channels, and a
journey whose draft has ``--nodes`` steps (300) of every kind with their handles connected, laid
out on a grid. Serves the app with daphne (the quickstart's settings; build ``frontend/dist``
first), logs in as the demo marketer with Debian's Chromium, then ``--repeat`` times (5):

- **open**: from the navigation's start to the frame in which every step of the journey is drawn
  (React Flow shows a step once it has measured it), read with ``performance.now()`` in the page;
- **drag**: one step dragged by the mouse along a 600-pixel path in 60 moves, every frame's
  duration recorded with ``requestAnimationFrame`` during the drag (p50, p95, max), and the
  renderer main thread's busy time per frame (DevTools' ``TaskDuration``: CPU time, so less
  sensitive to the other processes of a shared machine than the frame times).

    .venv/bin/python bench/canvas_open.py [--nodes 300] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from benchdb import database_fresh

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATABASE = "cdp_bench_canvas"
SERVER = "postgres://postgres@127.0.0.1:5432"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
COLUMNS = 20

ALL_DRAWN = """(count) => {
  const nodes = document.querySelectorAll('.react-flow__node');
  if (nodes.length < count) return false;
  for (const node of nodes) if (node.style.visibility !== 'visible') return false;
  return performance.now();
}"""

RECORD_FRAMES = """() => {
  window.__frames = [];
  let last = performance.now();
  const tick = (now) => {
    window.__frames.push(now - last);
    last = now;
    if (window.__recording) requestAnimationFrame(tick);
  };
  window.__recording = true;
  requestAnimationFrame(tick);
}"""


def big_graph(count: int, accounts: list[int]) -> dict:
    """A trigger, then steps of every kind in a row-by-row grid, each handle leading to the next
    step (the last ones end), as a long journey marketers draw looks to the canvas."""
    kinds = [
        (
            "send",
            {"account": accounts[0], "template": "wechat-order"},
            ["delivered", "failed", "no_response"],
        ),
        ("delay", {"seconds": 7200}, ["default"]),
        (
            "condition",
            {"branches": [{"id": "clicked", "label": "点了菜单", "rule": {"tag": "lead"}}]},
            ["clicked", "else"],
        ),
        ("add_tag", {"tag": "lead"}, ["default"]),
        ("wait_for_event", {"event": "Order Completed", "timeout_seconds": 86400}, ["happened", "timed_out"]),
        ("random_split", {"branches": [{"id": "a", "percent": 50}, {"id": "b", "percent": 50}]}, ["a", "b"]),
    ]
    nodes = [
        {
            "id": "n0",
            "type": "event_trigger",
            "config": {"event": "Live Registered"},
            "position": {"x": 0, "y": 0},
        }
    ]
    handles = {"n0": ["default"]}
    for index in range(1, count):
        node_type, config, node_handles = kinds[index % len(kinds)]
        position = {"x": (index % COLUMNS) * 300, "y": (index // COLUMNS) * 220}
        nodes.append({"id": f"n{index}", "type": node_type, "config": dict(config), "position": position})
        handles[f"n{index}"] = list(node_handles)
    edges = []
    next_target = 1
    for node in nodes:
        for handle in handles[node["id"]]:
            if next_target >= count:
                node["config"].setdefault("ends", []).append(handle)
                continue
            edges.append(
                {
                    "id": f"e{len(edges)}",
                    "source": node["id"],
                    "sourceHandle": handle,
                    "target": f"n{next_target}",
                }
            )
            next_target += 1
    return {"nodes": nodes, "edges": edges}


def build(count: int) -> tuple[dict, int]:
    env = database_fresh(SERVER, DATABASE)
    subprocess.run(
        [sys.executable, "manage.py", "demo_data", "--skip-customers"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    os.environ.update(env)
    import django

    django.setup()
    from connectors.models import ChannelAccount
    from journeys.services import journey_save

    accounts = list(ChannelAccount.objects.order_by("pk").values_list("pk", flat=True))
    graph = big_graph(count, accounts)
    journey = journey_save(name=f"{count} 步的旅程", actor=None, draft_graph=graph)
    return env, journey.pk


def serve(env: dict, port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "cdp.asgi:application",
        ],
        cwd=ROOT,
        env={**env, "REDIS_URL": ""},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _attempt in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=2):
                return server
        except OSError:
            time.sleep(0.2)  # another process: nothing to wait on but its port
    server.kill()
    raise SystemExit("the web server did not start")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def task_seconds(devtools) -> float:
    metrics = devtools.send("Performance.getMetrics")["metrics"]
    return next(metric["value"] for metric in metrics if metric["name"] == "TaskDuration")


def measure(base: str, journey_id: int, count: int, repeat: int) -> None:
    from playwright.sync_api import sync_playwright

    opens, frames, busy_per_frame = [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
        page = context.new_page()
        # The renderer's main-thread time (CPU spent on tasks, not the wall clock): what the canvas
        # itself costs, whatever else the shared machine runs.
        devtools = context.new_cdp_session(page)
        devtools.send("Performance.enable")
        page.goto(f"{base}/login/")
        page.fill("input[name=username]", "marketer")
        page.fill("input[name=password]", "demo-marketer")
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        for run in range(repeat + 1):  # the first run warms the caches; it is not counted
            page.goto(f"{base}/journeys/{journey_id}/edit/")
            drawn = page.wait_for_function(ALL_DRAWN, arg=count, polling="raf", timeout=60_000).json_value()
            if run:
                opens.append(drawn)
            step = page.locator('.react-flow__node[data-id="n0"]')
            box = step.bounding_box()
            x, y = box["x"] + box["width"] / 2, box["y"] + 12
            page.evaluate(RECORD_FRAMES)
            busy_before = task_seconds(devtools)
            page.mouse.move(x, y)
            page.mouse.down()
            for move in range(1, 61):
                page.mouse.move(x + move * 10, y + move * 3)
            page.mouse.up()
            page.evaluate("() => { window.__recording = false; }")
            busy = task_seconds(devtools) - busy_before
            if step.bounding_box()["x"] < box["x"] + 300:
                raise SystemExit("the dragged step did not move: the frame times would measure nothing")
            if run:
                recorded = page.evaluate("() => window.__frames.slice(1)")
                frames += recorded
                busy_per_frame.append(busy * 1000 / len(recorded))
        browser.close()
    print(f"{count}-node journey, {repeat} runs (after one warm-up)")
    print(
        f"open (navigation start to every step drawn): p50 {statistics.median(opens):.0f} ms, "
        f"max {max(opens):.0f} ms; runs {', '.join(f'{value:.0f}' for value in opens)}"
    )
    print(
        f"drag frame times ({len(frames)} frames): p50 {statistics.median(frames):.1f} ms, "
        f"p95 {percentile(frames, 0.95):.1f} ms, max {max(frames):.1f} ms"
    )
    print(f"main-thread time per drag frame: p50 {statistics.median(busy_per_frame):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    env, journey_id = build(args.nodes)
    port = 8790
    server = serve(env, port)
    try:
        measure(f"http://127.0.0.1:{port}", journey_id, args.nodes, args.repeat)
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
