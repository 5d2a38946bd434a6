// The supervisor dashboard: a snapshot, then changes, over one EventSource (/events).
// Run/stop call the REST API with the token and key kept in sessionStorage.
"use strict";

const state = {agents: new Map(), calls: new Map(), campaigns: new Map(), source: null};
const $ = (id) => document.getElementById(id);

function credentials() {
  const token = sessionStorage.getItem("sipdialer.token");
  const key = sessionStorage.getItem("sipdialer.key");
  return token && key ? {"X-Access-Token": token, "X-Key": key} : null;
}

function showLogin(message) {
  if (state.source) { state.source.close(); state.source = null; }
  sessionStorage.removeItem("sipdialer.token");
  sessionStorage.removeItem("sipdialer.key");
  $("board").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("token").focus();
}

async function login(event) {
  event.preventDefault();
  const token = $("token").value.trim(), key = $("key").value;
  const reply = await sd.request("POST", "/dashboard/login", {token, key});
  if (reply.status !== 204) {
    $("login-error").textContent = reply.status === 401 ? "Wrong token or key." : sd.detail(reply);
    return;
  }
  sessionStorage.setItem("sipdialer.token", token);
  sessionStorage.setItem("sipdialer.key", key);
  $("key").value = "";
  connect();
}

async function logout() {
  await sd.request("POST", "/dashboard/logout");
  showLogin();
}

function connect() {
  $("login").hidden = true;
  $("board").hidden = false;
  $("logout").hidden = false;
  if (state.source) state.source.close();
  state.source = sd.stream("/events", {
    snapshot(data) {
      state.agents = new Map(data.agents.map((a) => [a.id, a]));
      state.calls = new Map(data.calls.map((c) => [c.call_id, c]));
      state.campaigns = new Map(data.campaigns.map((c) => [c.id, c]));
      $("campaigns").replaceChildren();
      renderAll();
    },
    agent(data) { state.agents.set(data.agent.id, data.agent); renderAgents(); },
    call(data) { state.calls.set(data.call.call_id, data.call); renderCalls(); },
    call_ended(data) { state.calls.delete(data.call_id); renderCalls(); },
    campaign(data) { state.campaigns.set(data.campaign.id, data.campaign); renderCampaigns(); },
  }, denied, (live) => {
    $("conn").textContent = live ? "live" : "reconnecting…";
    $("conn").className = live ? "conn live" : "conn";
  });
}

async function denied() {
  // The stream was refused or the server went away: which one?
  const reply = await sd.request("GET", "/dashboard/snapshot").catch(() => ({status: 0}));
  if (reply.status === 401) showLogin("Your session ended; sign in again.");
  else setTimeout(connect, 1000);
}

function renderAll() { renderCampaigns(); renderAgents(); renderCalls(); }

function campaignName(call) {
  const campaign = state.campaigns.get(call.campaign);
  return campaign ? campaign.name : call.campaign_name;
}

function sinceCell(since) {
  return sd.el("td", {class: "num since", "data-since": since}, sd.duration(sd.serverNow() - since));
}

function renderAgents() {
  const rows = [...state.agents.values()].sort((a, b) => a.id.localeCompare(b.id)).map((a) => {
    const call = a.call;
    return sd.el("tr", {"data-agent": a.id},
      sd.el("td", {class: "id"}, a.id),
      sd.el("td", {class: "name"}, a.name),
      sd.el("td", {class: "registered"},
        sd.badge(a.registered ? "registered" : "unregistered", a.registered ? "yes" : "no")),
      sd.el("td", {class: "status"}, sd.badge(a.status)),
      sd.el("td", {class: "state"}, sd.badge(a.state)),
      sinceCell(a.since),
      sd.el("td", {class: "num calls"}, a.calls),
      sd.el("td", {class: "call"}, call ? `${call.number} · ${campaignName(call)}` : ""));
  });
  $("agents").replaceChildren(...rows);
}

function renderCalls() {
  const calls = [...state.calls.values()].sort((a, b) => a.started_at - b.started_at);
  $("call-count").textContent = String(calls.length);
  const rows = calls.map((c) => sd.el("tr", {"data-call": c.call_id},
    sd.el("td", {class: "agent"}, c.agent),
    sd.el("td", {class: "number"}, c.number),
    sd.el("td", {class: "campaign"}, campaignName(c)),
    sd.el("td", {class: "member"}, c.member),
    sd.el("td", {class: "state"}, sd.badge(c.state)),
    sinceCell(c.started_at)));
  if (!rows.length) rows.push(sd.el("tr", {}, sd.el("td", {colspan: 6, class: "empty"}, "no calls")));
  $("calls").replaceChildren(...rows);
}

// A campaign's card is built once and updated in place, so a button being clicked is
// never replaced under the pointer.
function campaignCard(c) {
  let card = document.querySelector(`[data-campaign="${CSS.escape(c.id)}"]`);
  if (card) return card;
  const field = (name, label) => [sd.el("dt", {}, label), sd.el("dd", {class: name})];
  card = sd.el("div", {class: "campaign", "data-campaign": c.id},
    sd.el("h3", {}, sd.el("span", {class: "name"}), sd.el("span", {class: "state"}),
      sd.el("span", {class: "calendar"})),
    sd.el("progress", {class: "done-bar", max: 1, value: 0}),
    sd.el("dl", {},
      field("total", "Members"), field("done", "Done"), field("ready", "Waiting to dial"),
      field("waiting", "Waiting for result"), field("in-flight", "In flight"),
      field("lines", "Lines")),
    sd.el("meter", {class: "lines-bar", min: 0, max: 1, value: 0}),
    sd.el("div", {class: "causes"}),
    sd.el("div", {class: "actions"},
      sd.el("button", {class: "run", "data-action": "run", onclick: () => setState(c.id, "run")}, "Run"),
      sd.el("button", {class: "stop", "data-action": "stop", onclick: () => setState(c.id, "stop")}, "Stop"),
      sd.el("a", {class: "open", href: "/campaign?id=" + encodeURIComponent(c.id)}, "Members…")));
  $("campaigns").append(card);
  return card;
}

function renderCampaigns() {
  for (const c of state.campaigns.values()) {
    const card = campaignCard(c);
    const set = (name, value) => { card.querySelector("." + name).textContent = String(value); };
    const counts = c.counts || {};
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const done = counts.ended || 0;
    set("name", c.name);
    card.querySelector(".state").replaceChildren(sd.badge(c.state));
    card.querySelector(".calendar").replaceChildren(
      sd.badge(c.calendar_open ? "open" : "closed"));
    set("total", total);
    set("done", done);
    set("ready", counts.ready || 0);
    set("waiting", c.waiting);
    set("in-flight", c.in_flight);
    set("lines", `${c.lines_in_use} / ${c.limit}`);
    const bar = card.querySelector(".done-bar");
    bar.max = Math.max(total, 1); bar.value = done;
    const meter = card.querySelector(".lines-bar");
    meter.max = Math.max(c.limit, 1); meter.value = c.lines_in_use;
    const causes = Object.entries(c.causes || {}).sort((a, b) => b[1] - a[1]);
    card.querySelector(".causes").replaceChildren(...(causes.length
      ? causes.map(([cause, n]) => sd.el("div", {"data-cause": cause}, `${cause}: ${n}`))
      : [sd.el("span", {class: "empty"}, "no member done yet")]));
    card.querySelector("[data-action=run]").disabled = c.state === "running";
    card.querySelector("[data-action=stop]").disabled = c.state !== "running";
  }
}

async function setState(id, action) {
  const headers = credentials();
  if (!headers) return showLogin();
  const reply = await sd.request("PUT", `/api/v2/dialer/${encodeURIComponent(id)}/state/${action}`,
    undefined, headers);
  if (reply.status === 401) return showLogin("The API refused the token; sign in again.");
  $("campaign-error").textContent = reply.status < 300 ? "" : sd.detail(reply);
}

function tick() {
  const now = sd.serverNow();
  for (const cell of document.querySelectorAll("[data-since]")) {
    cell.textContent = sd.duration(now - Number(cell.dataset.since));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  setInterval(tick, 1000);
  if (credentials()) connect(); else showLogin();
});
