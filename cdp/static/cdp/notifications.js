// Opens the signed-in user's notification stream and shows each notification as a toast.
(function () {
  const box = document.getElementById("notifications");
  if (!box || !("WebSocket" in window)) return;
  let delay = 1000;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/notifications/`);
    socket.onopen = () => { delay = 1000; box.dataset.connected = "true"; };
    socket.onmessage = (event) => {
      const notification = JSON.parse(event.data);
      const toast = document.createElement("div");
      toast.className = "toast";
      toast.dataset.kind = notification.kind;
      toast.textContent = notification.text;
      box.appendChild(toast);
      setTimeout(() => toast.remove(), 8000);
    };
    socket.onclose = (event) => {
      delete box.dataset.connected;
      if (event.code === 4401) return; // signed out: nothing to reconnect to
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
})();
