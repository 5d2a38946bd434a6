// A campaign's page: its settings (read-only), its members as a paged, filterable table,
// a member's attempt history, and the member actions. Every call goes to the REST API
// with the token and key the dashboard's login kept in sessionStorage; the table follows
// the dashboard's event stream (a call of this campaign ended: reload the page shown).
// members.js (the Add form) and upload.js (CSV upload) use `cp` below.
// A campaign that finished by itself (no member left, or its calendar's end date passed:
// dialer-semantics §5) dials nothing more, not even members reset or added since, until
// it is started again: the page says so and offers "Start campaign" (PUT .../state/run).
// Resetting members does not restart it by itself: placing calls stays a decision.
"use strict";

const cp = {
  id: new URLSearchParams(location.search).get("id") || "",
  page: 1,
  size: 25,
  total: 0,
  historyOf: null,
  reloadTimer: null,

  headers() {
    const token = sessionStorage.getItem("sipdialer.token");
    const key = sessionStorage.getItem("sipdialer.key");
    return token && key ? {"X-Access-Token": token, "X-Key": key} : null;
  },

  base() { return `/api/v2/dialer/${encodeURIComponent(cp.id)}`; },

  /** A REST call on this campaign (path after /api/v2/dialer/{id}); {status, body}. */
  async api(method, path, body) {
    const headers = cp.headers();
    if (!headers) { cp.signin(); return {status: 401, body: null}; }
    const reply = await sd.request(method, cp.base() + path, body, headers);
    if (reply.status === 401) cp.signin();
    return reply;
  },

  signin() {
    document.getElementById("page").hidden = true;
    document.getElementById("signin").hidden = false;
  },

  /** Reload the members table soon (several events in a row make one request). */
  reloadSoon(delay) {
    if (cp.reloadTimer) return;
    cp.reloadTimer = setTimeout(() => { cp.reloadTimer = null; loadMembers(); }, delay || 300);
  },
};

const $c = (id) => document.getElementById(id);

function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return isNaN(date) ? iso : date.toLocaleString([], {hour12: false});
}

async function loadSettings() {
  const reply = await cp.api("GET", "/settings");
  if (reply.status !== 200) { $c("page-error").textContent = sd.detail(reply); return false; }
  const data = reply.body;
  $c("campaign-name").textContent = data.name;
  document.title = `sipdialer · ${data.name}`;
  $c("settings-source").textContent = data.source ? `from ${data.source}` : "";
  const items = [];
  const show = (value) => (value !== null && typeof value === "object")
    ? JSON.stringify(value) : String(value);
  for (const [key, value] of Object.entries(data.campaign || {})) {
    items.push(sd.el("dt", {}, key), sd.el("dd", {"data-setting": key}, show(value)));
  }
  if (!items.length) items.push(sd.el("dd", {class: "empty"}, "not in the configuration file"));
  $c("settings").replaceChildren(...items);
  return true;
}

async function loadState() {
  const reply = await cp.api("GET", "");
  if (reply.status === 200) showState(reply.body.state, reply.body.finished_reason);
}

/** The state badge, and the notice with "Start campaign" while the campaign is finished. */
function showState(state, reason) {
  $c("campaign-state").replaceChildren(sd.badge(state));
  const finished = state === "finished";
  if (finished) {
    $c("finished-text").textContent = `This campaign has finished${reason ? ` (${reason})` : ""}:`
      + " it calls no one, not even members reset or added since, until it is started again.";
  }
  $c("finished-notice").hidden = !finished;
}

async function startCampaign() {
  $c("start-campaign").disabled = true;
  const reply = await cp.api("PUT", "/state/run");
  $c("start-campaign").disabled = false;
  if (reply.status !== 200) { $c("page-error").textContent = sd.detail(reply); return; }
  $c("page-error").textContent = "";
  showState(reply.body.state, reply.body.finished_reason);
}

function filters() {
  const query = new URLSearchParams({page: String(cp.page), size: String(cp.size)});
  const add = (name, id) => { const v = $c(id).value.trim(); if (v) query.set(name, v); };
  add("status", "filter-status");
  add("name", "filter-name");
  add("number", "filter-number");
  add("end_cause", "filter-cause");
  return query;
}

async function loadMembers() {
  const reply = await cp.api("GET", "/members?" + filters());
  if (reply.status !== 200) { $c("action-error").textContent = sd.detail(reply); return; }
  const {items, total} = reply.body;
  cp.total = total;
  $c("member-total").textContent = String(total);
  const pages = Math.max(1, Math.ceil(total / cp.size));
  $c("page-info").textContent = `page ${cp.page} of ${pages}`;
  $c("prev-page").disabled = cp.page <= 1;
  $c("next-page").disabled = cp.page >= pages;
  const rows = items.map(memberRow);
  if (!rows.length) rows.push(sd.el("tr", {}, sd.el("td", {colspan: 8, class: "empty"}, "no members")));
  $c("members").replaceChildren(...rows);
  // The last cause of a member that has not ended is its last attempt's.
  await Promise.all(items.filter((m) => !m.end_cause && m.attempts + countTries(m) > 0)
    .map(lastCause));
  if (cp.historyOf) await loadHistory(cp.historyOf);
}

function countTries(member) {
  return member.communications.reduce((n, c) => n + c.attempts, 0);
}

async function lastCause(member) {
  const reply = await cp.api("GET", `/attempts?member=${encodeURIComponent(member.id)}&size=1`);
  const attempt = reply.status === 200 ? reply.body.items[0] : null;
  const cell = document.querySelector(`tr[data-member="${CSS.escape(member.id)}"] .cause`);
  if (attempt && cell && !cell.textContent) cell.textContent = attempt.cause || attempt.state;
}

function memberRow(m) {
  const numbers = m.communications.map((c) => sd.el("span",
    {class: "number " + c.state, "data-number": c.number,
     title: `priority ${c.priority}, ${c.attempts} attempt(s), ${c.state}`},
    `${c.number} (${c.priority})`));
  const action = (name, label, handler) => sd.el("button",
    {type: "button", "data-action": name, onclick: () => handler(m)}, label);
  return sd.el("tr", {"data-member": m.id},
    sd.el("td", {class: "id"}, m.id),
    sd.el("td", {class: "name"}, m.name),
    sd.el("td", {class: "state"}, sd.badge(m.status)),
    sd.el("td", {class: "cause"}, m.end_cause || ""),
    sd.el("td", {class: "num attempts"}, m.attempts),
    sd.el("td", {class: "next"}, m.status === "ready" ? (when(m.next_call_at) || "now") : ""),
    sd.el("td", {class: "numbers"}, numbers),
    sd.el("td", {class: "actions"},
      action("history", "History", (x) => loadHistory(x)),
      action("stop", "Stop numbers", (x) => memberAction(x, "PUT", "/stop")),
      action("reset", "Reset attempts", (x) => memberAction(x, "PUT", "/reset")),
      action("delete", "Delete", (x) => {
        if (confirm(`Delete member ${x.id} ${x.name} with its attempts?`)) memberAction(x, "DELETE", "");
      })));
}

async function memberAction(member, method, suffix) {
  const reply = await cp.api(method, `/members/${encodeURIComponent(member.id)}${suffix}`);
  $c("action-error").textContent = reply.status < 300 ? "" : sd.detail(reply);
  await loadState(); // a reset member of a finished campaign waits for "Start campaign"
  if (method === "DELETE" && reply.status < 300 && cp.historyOf && cp.historyOf.id === member.id) {
    cp.historyOf = null;
    $c("history").hidden = true;
  }
  await loadMembers();
}

async function loadHistory(member) {
  cp.historyOf = member;
  const reply = await cp.api("GET", `/attempts?member=${encodeURIComponent(member.id)}&size=100`);
  if (reply.status !== 200) { $c("action-error").textContent = sd.detail(reply); return; }
  $c("history-member").textContent = `${member.id} ${member.name}`.trim();
  const rows = reply.body.items.map((a) => sd.el("tr", {"data-attempt": a.id},
    sd.el("td", {class: "started"}, when(a.created_at)),
    sd.el("td", {class: "ended"}, when(a.ended_at)),
    sd.el("td", {class: "agent"}, a.agent || ""),
    sd.el("td", {class: "number"}, a.number),
    sd.el("td", {class: "num sip"}, a.sip_code === null ? "" : a.sip_code),
    sd.el("td", {class: "cause"}, a.cause || a.state),
    sd.el("td", {class: "disposition"}, a.disposition || ""),
    sd.el("td", {class: "num talk"}, sd.duration(a.talk_seconds || 0)),
    sd.el("td", {class: "result"}, a.result ? JSON.stringify(a.result) : "", a.comment ? ` ${a.comment}` : ""),
    sd.el("td", {class: "recording"}, a.recording
      ? sd.el("a", {href: `/dashboard/recording?member=${encodeURIComponent(a.member)}&attempt=${encodeURIComponent(a.id)}`},
        "listen") : "")));
  if (!rows.length) rows.push(sd.el("tr", {}, sd.el("td", {colspan: 10, class: "empty"}, "no attempts yet")));
  $c("attempts").replaceChildren(...rows);
  $c("history").hidden = false;
}

function follow() {
  // The stream is admitted by the dashboard's cookie; without it the table is reloaded
  // after each action only (and by the Filter button).
  sd.stream("/events", {
    call_ended(data) { if (data.call && data.call.campaign === cp.id) cp.reloadSoon(); },
    call(data) { if (data.call && data.call.campaign === cp.id) cp.reloadSoon(); },
    campaign(data) {
      if (data.campaign && data.campaign.id === cp.id) {
        showState(data.campaign.state, data.campaign.finished_reason);
      }
    },
  }, () => {}, () => {});
}

document.addEventListener("DOMContentLoaded", async () => {
  if (!cp.headers() || !cp.id) { cp.signin(); return; }
  $c("page").hidden = false;
  $c("filters").addEventListener("submit", (event) => {
    event.preventDefault(); cp.page = 1; loadMembers();
  });
  $c("prev-page").addEventListener("click", () => { cp.page -= 1; loadMembers(); });
  $c("next-page").addEventListener("click", () => { cp.page += 1; loadMembers(); });
  $c("start-campaign").addEventListener("click", startCampaign);
  if (!(await loadSettings())) return;
  await loadState();
  await loadMembers();
  follow();
});
