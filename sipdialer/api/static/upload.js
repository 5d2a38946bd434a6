// The campaign page's CSV upload: pick a file; its first 64 KiB go to
// POST .../members/import/preview, which parses the first rows and guesses the character
// set and the separator (preselected here); the user sets "first line is a header" and,
// above each column of the preview, which member field it holds. Import then streams the
// whole file (the File object is the request body: the browser reads it from disk as it
// sends) to POST .../members/import with the same choices as query parameters, shows the
// upload's progress and then every refused row with its line and reason.
// A column mapped to expire gets a date format select (the importer's expire:FORMAT,
// sipdialer/importer/dates.py), preselected with the format the preview found in its cells.
"use strict";

const PREVIEW_BYTES = 64 * 1024;
const FIELDS = [
  ["", "—"], ["name", "name"], ["number", "number"], ["priority", "priority"],
  ["timezone", "time zone"], ["expire", "expire"], ["var", "variable"],
];
// Values are the importer's format names; "auto" is a plain expire=COLUMN.
const DATE_FORMATS = [
  ["auto", "automatic (ISO 8601 / epoch ms)"], ["DD.MM.YYYY", "DD.MM.YYYY"],
  ["DD.MM.YYYY HH:MM", "DD.MM.YYYY HH:MM"], ["DD/MM/YYYY", "DD/MM/YYYY"],
  ["MM/DD/YYYY", "MM/DD/YYYY"], ["YYYY-MM-DD HH:MM", "YYYY-MM-DD HH:MM"],
  ["epoch-seconds", "epoch seconds"],
];
// Formats that say "this column is a date" by themselves (digits may be phone numbers).
const DATE_SHAPES = new Set(DATE_FORMATS.slice(1, 6).map(([value]) => value));
const up = {file: null, preview: null, guessed: false, mapping: []};

/** The date format the preview found in column i, else automatic. */
function dateGuess(i) {
  return (up.preview && (up.preview.date_formats || [])[i]) || "auto";
}

function uploadQuery(extra) {
  const query = new URLSearchParams({
    encoding: $c("upload-encoding").value,
    delimiter: $c("upload-delimiter").value,
  });
  for (const [k, v] of Object.entries(extra || {})) query.set(k, v);
  return query;
}

async function loadPreview() {
  $c("upload-error").textContent = "";
  const headers = cp.headers();
  if (!headers || !up.file) return;
  const query = up.guessed ? uploadQuery() : new URLSearchParams();
  query.set("rows", "10");
  query.set("cut", String(up.file.size > PREVIEW_BYTES));
  const response = await fetch(`${cp.base()}/members/import/preview?${query}`, {
    method: "POST", headers: Object.assign({"Content-Type": "text/csv"}, headers),
    body: up.file.slice(0, PREVIEW_BYTES), credentials: "same-origin",
  });
  const body = await response.json().catch(() => null);
  if (response.status !== 200) {
    $c("upload-error").textContent = sd.detail({status: response.status, body});
    return;
  }
  up.preview = body;
  if (!up.guessed) {
    // First look at this file: preselect what the server guessed.
    up.guessed = true;
    $c("upload-encoding").value = body.encoding_guess;
    $c("upload-delimiter").value = body.delimiter_guess;
    $c("upload-header").checked = body.header_guess;
  }
  if (!up.mapping.length) up.mapping = guessMapping(body);
  const tab = body.delimiter_guess === "\t" ? "tab" : body.delimiter_guess;
  $c("upload-guess").textContent =
    `Guessed: ${body.encoding_guess}, separator ${tab}` + (body.header_guess ? ", with a header" : "");
  $c("upload-options").hidden = false;
  renderPreview();
}

function headerRow() {
  return up.preview && $c("upload-header").checked ? up.preview.rows[0] || [] : null;
}

/** A first mapping: header names that say what they are, else numbers by their look. */
function guessMapping(preview) {
  const mapping = Array.from({length: preview.columns}, () => ({field: "", extra: ""}));
  const header = preview.header_guess ? preview.rows[0] : null;
  const data = header ? preview.rows.slice(1) : preview.rows;
  const named = (cell, words) => words.some((w) => cell.toLowerCase().includes(w));
  let haveName = false;
  mapping.forEach((m, i) => {
    const title = header ? (header[i] || "").trim() : "";
    const cells = data.map((r) => (r[i] || "").trim()).filter(Boolean);
    const phoneLike = cells.length && cells.every((c) => /^\+?[\d\s\-().]{5,}$/.test(c));
    if (named(title, ["phone", "number", "tel", "mobile", "телеф", "номер"]) || (!header && phoneLike)) {
      m.field = "number";
    } else if (named(title, ["name", "фио", "имя", "ім'я", "піб"]) && !haveName) {
      m.field = "name"; haveName = true;
    } else if (named(title, ["zone", "timezone"])) {
      m.field = "timezone";
    } else if (named(title, ["expire"]) || DATE_SHAPES.has((preview.date_formats || [])[i])) {
      m.field = "expire"; m.extra = (preview.date_formats || [])[i] || "auto";
    } else if (!header && !haveName && cells.length && !phoneLike) {
      m.field = "name"; haveName = true;
    } else if (title) {
      m.field = "var"; m.extra = title.replace(/[^A-Za-z0-9_-]/g, "") || `col${i}`;
    }
  });
  return mapping;
}

function mappingCell(i) {
  const m = up.mapping[i] || (up.mapping[i] = {field: "", extra: ""});
  const select = sd.el("select", {class: "map-field", "data-column": i, "aria-label": `column ${i}`,
    onchange: (e) => {
      m.field = e.target.value; m.extra = m.field === "expire" ? dateGuess(i) : ""; renderPreview();
    }},
    ...FIELDS.map(([value, label]) => sd.el("option", {value, selected: value === m.field}, label)));
  const extra = m.field === "number"
    ? sd.el("input", {class: "map-extra", type: "number", placeholder: "priority", value: m.extra,
        "data-column": i, oninput: (e) => { m.extra = e.target.value; showMap(); }})
    : m.field === "var"
      ? sd.el("input", {class: "map-extra", placeholder: "variable name", value: m.extra,
          "data-column": i, oninput: (e) => { m.extra = e.target.value; showMap(); }})
      : m.field === "expire"
        ? sd.el("select", {class: "map-format", "data-column": i, "aria-label": `date format of column ${i}`,
            title: "a date read in a format is in the member's time zone (the time zone column), else UTC",
            onchange: (e) => { m.extra = e.target.value; showMap(); }},
            ...DATE_FORMATS.map(([value, label]) => sd.el("option", {value, selected: value === (m.extra || "auto")}, label)))
        : null;
  return sd.el("th", {}, select, extra);
}

function renderPreview() {
  const preview = up.preview;
  if (!preview) return;
  const header = headerRow();
  const rows = header ? preview.rows.slice(1) : preview.rows;
  const lines = header ? preview.lines.slice(1) : preview.lines;
  const columns = Array.from({length: preview.columns}, (_, i) => i);
  const table = [
    sd.el("tr", {class: "mapping"}, sd.el("th", {}, "line"), ...columns.map(mappingCell)),
  ];
  if (header) {
    table.push(sd.el("tr", {class: "header"}, sd.el("th", {}, preview.lines[0]),
      ...columns.map((i) => sd.el("th", {}, header[i] || ""))));
  }
  rows.forEach((row, r) => table.push(sd.el("tr", {class: "data"},
    sd.el("td", {class: "num"}, lines[r]), ...columns.map((i) => sd.el("td", {}, row[i] || "")))));
  $c("upload-preview").replaceChildren(...table);
  showMap();
}

/** The importer's --map: name=0,number=1,number:5=2,var:city=3,expire:DD.MM.YYYY=4
 * (columns by index). */
function mapText() {
  const pairs = [];
  up.mapping.forEach((m, i) => {
    if (!m.field) return;
    if (m.field === "number") pairs.push(m.extra.trim() === "" ? `number=${i}` : `number:${m.extra.trim()}=${i}`);
    else if (m.field === "var") pairs.push(`var:${m.extra.trim() || "col" + i}=${i}`);
    else if (m.field === "expire" && m.extra && m.extra !== "auto") pairs.push(`expire:${m.extra}=${i}`);
    else pairs.push(`${m.field}=${i}`);
  });
  return pairs.join(",");
}

function showMap() {
  const text = mapText();
  $c("upload-map").textContent = text ? `Map: ${text}` : "Choose which column holds the number.";
  $c("upload-import").disabled = !up.file || !/(^|,)number[:=]/.test(text);
}

function startImport() {
  const headers = cp.headers();
  if (!headers || !up.file) return;
  $c("upload-error").textContent = "";
  $c("upload-result").hidden = true;
  const query = uploadQuery({skip_header: String($c("upload-header").checked), map: mapText()});
  const xhr = new XMLHttpRequest();
  xhr.open("POST", `${cp.base()}/members/import?${query}`);
  for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
  xhr.setRequestHeader("Content-Type", "text/csv");
  const bar = $c("upload-progress");
  bar.hidden = false; bar.max = up.file.size || 1; bar.value = 0;
  $c("upload-import").disabled = true;
  $c("upload-status").textContent = "uploading…";
  xhr.upload.onprogress = (e) => { bar.value = e.loaded; };
  xhr.upload.onload = () => {
    bar.removeAttribute("value"); // indeterminate: the server reads the rows now
    $c("upload-status").textContent = "importing…";
  };
  xhr.onerror = () => { finishImport(0, null); };
  xhr.onload = () => {
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch (e) { body = xhr.responseText; }
    finishImport(xhr.status, body);
  };
  xhr.send(up.file);
}

function finishImport(status, body) {
  const bar = $c("upload-progress");
  bar.max = 1; bar.value = 1;
  $c("upload-import").disabled = false;
  if (status !== 200) {
    $c("upload-status").textContent = "";
    $c("upload-error").textContent = status ? sd.detail({status, body}) : "the upload failed";
    return;
  }
  $c("upload-status").textContent = "done";
  $c("upload-summary").textContent =
    `${body.rows} rows read, ${body.imported} imported, ${body.refused.length} refused.`;
  const rows = body.refused.map((r) => sd.el("tr", {"data-line": r.line},
    sd.el("td", {class: "num line"}, r.line), sd.el("td", {class: "reason"}, r.reason)));
  if (!rows.length) rows.push(sd.el("tr", {}, sd.el("td", {colspan: 2, class: "empty"}, "no row refused")));
  $c("upload-refused").replaceChildren(...rows);
  $c("upload-result").hidden = false;
  loadMembers();
}

document.addEventListener("DOMContentLoaded", () => {
  $c("upload-file").addEventListener("change", (e) => {
    up.file = e.target.files[0] || null;
    up.guessed = false; up.preview = null; up.mapping = [];
    $c("upload-result").hidden = true;
    loadPreview();
  });
  $c("upload-encoding").addEventListener("change", loadPreview);
  $c("upload-delimiter").addEventListener("change", () => { up.mapping = []; loadPreview(); });
  $c("upload-header").addEventListener("change", renderPreview);
  $c("upload-import").addEventListener("click", startImport);
});
