// The agent console: signed in by extension + SIP password (a session cookie); one
// EventSource (/agent/events) brings this agent's state and member card.
"use strict";

const $ = (id) => document.getElementById(id);
const CONSOLE = {"X-Console": "1"};
const view = {agent: null, card: null, cardKey: null, source: null};

function showLogin(message) {
  if (view.source) { view.source.close(); view.source = null; }
  $("console").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("who").textContent = "";
  $("login-error").textContent = message || "";
}

async function login(event) {
  event.preventDefault();
  const extension = $("extension").value.trim(), password = $("password").value;
  const reply = await sd.request("POST", "/agent/login", {extension, password});
  if (reply.status !== 204) {
    $("login-error").textContent =
      reply.status === 401 ? "Wrong extension or password." : sd.detail(reply);
    return;
  }
  $("password").value = "";
  connect();
}

async function logout() {
  await sd.request("POST", "/agent/logout");
  showLogin();
}

function connect() {
  $("login").hidden = true;
  $("console").hidden = false;
  $("logout").hidden = false;
  if (view.source) view.source.close();
  view.source = sd.stream("/agent/events", {console: render}, denied, (live) => {
    $("conn").textContent = live ? "live" : "reconnecting…";
    $("conn").className = live ? "conn live" : "conn";
  });
}

async function denied() {
  const reply = await sd.request("GET", "/agent/state").catch(() => ({status: 0}));
  if (reply.status === 401) showLogin("Your session ended; sign in again.");
  else setTimeout(connect, 1000);
}

function render(data) {
  view.agent = data.agent;
  renderAgent(data.agent);
  renderCard(data.card, data.agent);
}

function renderAgent(a) {
  if (!a) return;
  $("who").textContent = `${a.id}${a.name ? " · " + a.name : ""}`;
  $("registered").replaceChildren(
    sd.badge(a.registered ? "phone registered" : "phone not registered", a.registered ? "yes" : "no"));
  $("status").replaceChildren(sd.badge(a.status));
  $("state").replaceChildren(sd.badge(a.state));
  $("in-state").dataset.since = a.since;
  for (const button of document.querySelectorAll("[data-status]")) {
    button.classList.toggle("chosen", button.dataset.status === a.status);
  }
}

function renderCard(card, agent) {
  $("card").hidden = !card;
  $("no-card").hidden = !!card;
  view.card = card;
  if (!card) return;
  // A new member, or the same one called again: a fresh form.
  const latest = card.attempts.length ? card.attempts[0].call_id : "";
  const key = `${card.campaign}/${card.member}/${latest}`;
  const fresh = key !== view.cardKey;
  view.cardKey = key;
  const call = agent && agent.call && agent.call.member === card.member ? agent.call : null;
  $("call-state").replaceChildren(call ? sd.badge(call.state) : sd.badge(card.status));
  $("member-name").textContent = card.name || "(no name)";
  $("member-number").textContent = card.number;
  $("member-campaign").textContent = card.campaign_name;
  $("member-id").textContent = String(card.member);
  $("member-status").textContent = card.status + (card.ended_with ? ` (${card.ended_with})` : "");
  const variables = Object.entries(card.variables);
  $("variables").replaceChildren(...(variables.length
    ? variables.map(([name, value]) => sd.el("tr", {"data-variable": name},
        sd.el("th", {}, name), sd.el("td", {}, value)))
    : [sd.el("tr", {}, sd.el("td", {class: "empty"}, "none"))]));
  $("numbers").replaceChildren(...card.numbers.map((n) => sd.el("tr", {},
    sd.el("td", {}, n.number), sd.el("td", {}, n.active ? "yes" : "stopped"),
    sd.el("td", {class: "num"}, n.attempts))));
  $("attempts").replaceChildren(...card.attempts.map((t) => sd.el("tr", {"data-attempt": t.call_id},
    sd.el("td", {}, sd.time(t.created_at)), sd.el("td", {}, t.number), sd.el("td", {}, t.agent || ""),
    sd.el("td", {class: "cause"}, t.cause || (t.state === "in_flight" ? "in progress" : "")),
    sd.el("td", {class: "disposition"}, t.disposition || ""),
    sd.el("td", {class: "num"}, t.talk_seconds ? talk(t.talk_seconds) : ""),
    sd.el("td", {}, t.comment || ""))));
  if (fresh) resetForm(card);
  $("result").hidden = !card.waiting;
  $("result-done").hidden = card.waiting || !view.submitted;
  tick();
}

function talk(seconds) {
  return seconds < 60 ? `${seconds.toFixed(1)} s` : sd.duration(seconds);
}

function resetForm(card) {
  view.submitted = false;
  $("result").reset();
  $("result-error").textContent = "";
  $("stop-numbers").replaceChildren(
    sd.el("label", {}, sd.el("input", {type: "checkbox", value: "all"}), " all"),
    ...card.numbers.filter((n) => n.active).map((n) =>
      sd.el("label", {}, sd.el("input", {type: "checkbox", value: n.number}), " " + n.number)));
}

async function submitResult(event) {
  event.preventDefault();
  const card = view.card;
  if (!card) return;
  const outcome = document.querySelector("input[name=outcome]:checked").value;
  const stops = [...$("stop-numbers").querySelectorAll("input:checked")].map((i) => i.value);
  const body = {
    campaign: card.campaign, member: card.member, success: outcome === "success",
    reset_retries: $("reset-retries").checked,
    stop_communications: stops.includes("all") ? "all" : stops,
    comment: $("comment").value,
  };
  const after = $("next-after").value.trim();
  if (outcome === "retry" && after !== "") body.next_after_sec = Number(after);
  const next = $("next-number").value.trim();
  if (next) body.next_communication = next;
  const reply = await sd.request("PUT", "/agent/result", body, CONSOLE);
  if (reply.status === 401) return showLogin("Your session ended; sign in again.");
  if (reply.status >= 300) { $("result-error").textContent = sd.detail(reply); return; }
  view.submitted = true;
  $("result-error").textContent = "";
  $("result-done").textContent = outcome === "success" ? "Result sent: success." : "Result sent: retry.";
  $("result-done").hidden = false;
  $("result").hidden = true;
}

async function setStatus(status) {
  const reply = await sd.request("PUT", "/agent/status", {status}, CONSOLE);
  if (reply.status === 401) return showLogin("Your session ended; sign in again.");
  $("status-error").textContent = reply.status < 300 ? "" : sd.detail(reply);
}

function tick() {
  const now = sd.serverNow();
  const since = Number($("in-state").dataset.since || 0);
  $("in-state").textContent = since ? sd.duration(now - since) : "";
  const card = view.card;
  const countdown = $("countdown");
  if (card && card.waiting && card.result_deadline) {
    const left = card.result_deadline - now;
    countdown.textContent = left > 0 ? `${sd.duration(left)} left` : "time is up";
    countdown.classList.toggle("late", left <= 10);
  } else {
    countdown.textContent = "";
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  $("result").addEventListener("submit", submitResult);
  for (const button of document.querySelectorAll("[data-status]")) {
    button.addEventListener("click", () => setStatus(button.dataset.status));
  }
  setInterval(tick, 250);
  const reply = await sd.request("GET", "/agent/state").catch(() => ({status: 0}));
  if (reply.status === 200) connect(); else showLogin();
});
