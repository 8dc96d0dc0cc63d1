import { useCallback, useEffect, useRef, useState } from 'react';
import { api } from './api.js';

// Counts per step of a published journey ({entered, waiting, left: {handle: n}} by node id), fetched
// when the journey's websocket says customers moved (and once more a moment later, since the server
// tells at most once a second). While connected, the host element carries data-live="connected".
export function useLiveCounts({ active, urls, host }) {
  const [counts, setCounts] = useState({});
  // Fetches overlap (a move, and the fetch a moment later); on a busy server an older answer can
  // arrive after a newer one, and must not put the older counts back.
  const requested = useRef(0);
  const shown = useRef(0);
  const refreshCounts = useCallback(async () => {
    const request = ++requested.current;
    try {
      const stats = await api(urls.stats);
      if (request < shown.current) return;
      shown.current = request;
      setCounts(stats.nodes ?? {});
    } catch {
      /* the next move tries again */
    }
  }, [urls.stats]);

  useEffect(() => {
    if (!active) return undefined;
    let socket = null;
    let closed = false;
    let again = null;
    let delay = 1000;
    const connect = () => {
      const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
      socket = new WebSocket(`${scheme}://${location.host}${urls.socket}`);
      socket.onopen = () => {
        delay = 1000;
        host.current?.setAttribute('data-live', 'connected');
        refreshCounts();
      };
      socket.onmessage = () => {
        refreshCounts();
        clearTimeout(again);
        again = setTimeout(refreshCounts, 1500); // the server tells at most once a second
      };
      socket.onclose = (event) => {
        host.current?.removeAttribute('data-live');
        if (closed || event.code === 4401) return;
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 30000);
      };
    };
    refreshCounts();
    connect();
    return () => {
      closed = true;
      clearTimeout(again);
      socket?.close();
    };
  }, [active, refreshCounts, urls.socket, host]);

  return counts;
}
