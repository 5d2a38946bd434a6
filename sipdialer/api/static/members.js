// The campaign page's "Add member" form: name, priority, time zone, expire, numbers with
// priorities, variables as key/value rows, "run after adding". It posts one member to
// POST /api/v2/dialer/{id}/members[?autoRun=true]; a 422 is mapped back next to the field
// its `loc` names (["body", "communications", 0, "number"] -> communications.0.number),
// and a member refused for a number another member has shows that reason on the number.
"use strict";

function numberRow(number, priority) {
  return sd.el("div", {class: "row number-row"},
    sd.el("input", {class: "number", placeholder: "+380441234567", "aria-label": "number",
      value: number || ""}),
    sd.el("input", {class: "priority", type: "number", "aria-label": "number priority",
      value: priority === undefined ? "" : priority, placeholder: "priority"}),
    sd.el("button", {type: "button", class: "remove", onclick: (e) => removeRow(e)}, "×"),
    sd.el("div", {class: "error", "data-error-for": ""}));
}

/** Number rows' error slots follow their position, which is their index in the body. */
function renumber() {
  [...$c("add-numbers").children].forEach((row, i) => {
    row.dataset.index = String(i);
    row.querySelector("[data-error-for]").dataset.errorFor = `communications.${i}`;
  });
}

function addNumberRow() {
  $c("add-numbers").append(numberRow());
  renumber();
}

function variableRow() {
  return sd.el("div", {class: "row variable-row"},
    sd.el("input", {class: "key", placeholder: "name", "aria-label": "variable name"}),
    sd.el("input", {class: "value", placeholder: "value", "aria-label": "variable value"}),
    sd.el("button", {type: "button", class: "remove", onclick: (e) => e.target.closest(".row").remove()}, "×"));
}

function removeRow(event) {
  event.target.closest(".row").remove();
  renumber();
}

function clearErrors() {
  for (const slot of document.querySelectorAll("#add-form [data-error-for]")) slot.textContent = "";
  $c("add-error").textContent = "";
  $c("add-done").hidden = true;
}

function memberBody() {
  const body = {name: $c("add-name").value.trim(), communications: [], variables: {}};
  const priority = $c("add-priority").value.trim();
  if (priority !== "") body.priority = Number(priority);
  const zone = $c("add-timezone").value.trim();
  if (zone) body.timezone = zone;
  const expire = $c("add-expire").value;
  if (expire) {
    const date = new Date(expire); // the browser's local time; the API wants UTC
    body.expire = isNaN(date) ? expire : date.toISOString();
  }
  for (const row of $c("add-numbers").children) {
    const number = row.querySelector(".number").value.trim();
    const p = row.querySelector(".priority").value.trim();
    body.communications.push(p === "" ? {number} : {number, priority: Number(p)});
  }
  for (const row of $c("add-variables").children) {
    const key = row.querySelector(".key").value.trim();
    if (key) body.variables[key] = row.querySelector(".value").value;
  }
  return body;
}

/** The error slot for a `loc`: the longest prefix that has one, else the form's line. */
function errorSlot(loc) {
  const path = loc.filter((part) => part !== "body").map(String);
  for (let n = path.length; n > 0; n -= 1) {
    const slot = document.querySelector(`#add-form [data-error-for="${CSS.escape(path.slice(0, n).join("."))}"]`);
    if (slot) return slot;
  }
  return $c("add-error");
}

function showError(slot, text) {
  slot.textContent = slot.textContent ? `${slot.textContent}; ${text}` : text;
}

function showRefusal(reason) {
  // 'number "+38044..." is already a number of member 12': put it on that number's row.
  const match = /number ['"]([^'"]+)['"]/.exec(reason);
  const rows = [...$c("add-numbers").children];
  const row = match && rows.find((r) => normalise(r.querySelector(".number").value) === match[1]);
  showError(row ? row.querySelector("[data-error-for]") : $c("add-error"), reason);
}

function normalise(number) { return number.replace(/[\s\-.()]/g, ""); }

async function addMember(event) {
  event.preventDefault();
  clearErrors();
  const run = $c("add-autorun").checked;
  const reply = await cp.api("POST", "/members" + (run ? "?autoRun=true" : ""), memberBody());
  if (reply.status === 422 && reply.body && Array.isArray(reply.body.detail)) {
    for (const error of reply.body.detail) {
      const message = error.type === "missing" ? "required" : String(error.msg).replace(/^Value error, /, "");
      showError(errorSlot(error.loc || []), message);
    }
    return;
  }
  if (reply.status >= 300) { $c("add-error").textContent = sd.detail(reply); return; }
  const result = reply.body.members[0];
  if (result.error) { showRefusal(result.error); return; }
  $c("add-done").textContent = `Added member ${result.id}` + (reply.body.started ? "; the campaign runs." : ".");
  $c("add-done").hidden = false;
  $c("add-form").reset();
  $c("add-numbers").replaceChildren();
  addNumberRow();
  $c("add-variables").replaceChildren();
  await loadMembers();
  await loadState();
}

document.addEventListener("DOMContentLoaded", () => {
  addNumberRow();
  $c("add-number").addEventListener("click", addNumberRow);
  $c("add-variable").addEventListener("click", () => $c("add-variables").append(variableRow()));
  $c("add-form").addEventListener("submit", addMember);
});
