// A journey's page stays live: when the server says its customers moved, fetch the counts again
// (and once more a moment later, since the server tells at most once a second) and update the
// numbers in place. (Archiving asks first: cdp/page.js's data-confirm.)
(function () {
  const stats = document.getElementById("journey-stats");
  const state = document.getElementById("live-state");
  if (!stats || !("WebSocket" in window)) return;
  let delay = 1000;
  let again = null;
  let asked = 0; // the latest refresh asked for: an older answer arriving after it is dropped

  function setText(cell, value) {
    if (cell && cell.textContent !== String(value)) {
      cell.textContent = String(value);
      cell.classList.remove("count--changed");
      void cell.offsetWidth; // restart the highlight
      cell.classList.add("count--changed");
    }
  }

  function leftBadges(cell, left) {
    const handles = Object.keys(left).sort();
    const text = handles.map((handle) => `${handle} ${left[handle]}`).join(" ");
    if (cell.dataset.shown === text) return;
    cell.dataset.shown = text;
    cell.replaceChildren();
    if (!handles.length) {
      const none = document.createElement("span");
      none.className = "muted";
      none.textContent = "—";
      cell.append(none);
      return;
    }
    for (const handle of handles) {
      const badge = document.createElement("span");
      badge.className = "handle-count";
      const name = document.createElement("span");
      name.className = "handle-count__name";
      name.textContent = handle;
      badge.append(name, ` ${left[handle]}`);
      cell.append(badge, " ");
    }
  }

  async function refresh() {
    const ask = ++asked;
    const response = await fetch(stats.dataset.statsUrl, { headers: { Accept: "application/json" } });
    if (!response.ok || ask !== asked) return;
    const data = await response.json();
    if (ask !== asked) return;
    for (const key of ["entered", "active", "converted", "failed"]) {
      setText(stats.querySelector(`[data-stat="${key}"]`), data[key]);
    }
    for (const row of document.querySelectorAll("#journey-nodes [data-node]")) {
      const counts = data.nodes[row.dataset.node] || { entered: 0, waiting: 0, left: {} };
      setText(row.querySelector('[data-count="entered"]'), counts.entered);
      setText(row.querySelector('[data-count="waiting"] a'), counts.waiting);
      leftBadges(row.querySelector('[data-count="left"]'), counts.left);
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${stats.dataset.socket}`);
    socket.onopen = () => {
      delay = 1000;
      stats.dataset.live = "connected";
      state.textContent = state.dataset.live;
      state.classList.add("live-dot--on");
      refresh(); // whatever moved while the page loaded
    };
    socket.onmessage = () => {
      refresh();
      clearTimeout(again);
      again = setTimeout(refresh, 1500);
    };
    socket.onclose = (event) => {
      delete stats.dataset.live;
      state.textContent = state.dataset.offline;
      state.classList.remove("live-dot--on");
      if (event.code === 4401) return;
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
})();
