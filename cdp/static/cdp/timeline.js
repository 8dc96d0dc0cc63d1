// Keeps an open profile's timeline live: when the server says this customer got new events,
// fetch the rows stored after the last one shown (by id, so late-dated events appear too).
(function () {
  const list = document.getElementById("timeline");
  if (!list || !("WebSocket" in window)) return;
  const customerId = Number(list.dataset.customer);
  let delay = 1000;
  let fetching = false;

  async function fetchNewer() {
    if (fetching) return;
    fetching = true;
    try {
      const shown = [...list.querySelectorAll("[data-id]")].map((row) => Number(row.dataset.id));
      const url = list.dataset.liveUrl + (shown.length ? "&since=" + Math.max(...shown) : "&since=0");
      const response = await fetch(url, { headers: { "HX-Request": "true" } });
      if (!response.ok) return;
      const template = document.createElement("template");
      template.innerHTML = (await response.text()).trim();
      const rows = [...template.content.querySelectorAll("[data-event]")];
      if (!rows.length) return;
      list.querySelector(".timeline__empty")?.remove();
      for (const row of rows.reverse()) {
        row.classList.add("event--new");
        list.prepend(row);
      }
    } finally {
      fetching = false;
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/customers/live/`);
    socket.onopen = () => { delay = 1000; list.dataset.live = "connected"; };
    socket.onmessage = (event) => {
      if (JSON.parse(event.data).ids.includes(customerId)) fetchNewer();
    };
    socket.onclose = (event) => {
      delete list.dataset.live;
      if (event.code === 4401) return;
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
})();
