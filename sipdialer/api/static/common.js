// Helpers shared by the dashboard and the agent console. Plain ES2020, no build step.
// Everything shown is put in the page with textContent, never as HTML: member names and
// variables come from API clients.
"use strict";

const sd = {
  /** Create an element: sd.el("td", {class: "num"}, "12", child...). */
  el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  },

  badge(text, kind) {
    return sd.el("span", {class: "badge " + (kind || text)}, text);
  },

  /** Seconds as m:ss or h:mm:ss. */
  duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const pad = (n) => String(n).padStart(2, "0");
    return h ? `${h}:${pad(m)}:${pad(r)}` : `${m}:${pad(r)}`;
  },

  /** Server time now, from the offset measured on the last message. */
  offset: 0,
  serverNow() { return Date.now() / 1000 + sd.offset; },
  sync(now) { if (typeof now === "number") sd.offset = now - Date.now() / 1000; },

  time(ts) {
    if (!ts) return "";
    return new Date(ts * 1000).toLocaleTimeString([], {hour12: false});
  },

  /** JSON request; resolves to {status, body}. */
  async request(method, url, body, headers) {
    const init = {method, headers: Object.assign({}, headers || {}), credentials: "same-origin"};
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    let data = null;
    const text = await response.text();
    if (text) { try { data = JSON.parse(text); } catch (e) { data = text; } }
    return {status: response.status, body: data};
  },

  detail(reply) {
    const body = reply.body;
    if (body && typeof body === "object" && "detail" in body) {
      return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    }
    return `HTTP ${reply.status}`;
  },

  /**
   * Open an EventSource with one handler per event type; onDenied() when the server
   * refuses the stream (a closed source: the browser does not retry non-200 replies).
   */
  stream(url, handlers, onDenied, onState) {
    const source = new EventSource(url);
    for (const [type, handler] of Object.entries(handlers)) {
      source.addEventListener(type, (event) => {
        const data = JSON.parse(event.data);
        sd.sync(data.now);
        handler(data);
      });
    }
    source.onopen = () => onState && onState(true);
    source.onerror = () => {
      onState && onState(false);
      if (source.readyState === EventSource.CLOSED) onDenied(source);
    };
    return source;
  },
};
