// The page of `zoo serve`: four tabs, each a form that posts to the server's own API on the same origin.
// Plain browser JavaScript, no framework and nothing fetched from elsewhere, so the page works offline.
"use strict";

const PANELS = ["transcribe", "similarity", "caption", "classify"];
// The /v1/models task each panel needs.
const TASKS = {transcribe: "transcription", similarity: "embedding", caption: "caption",
               classify: "classification"};

const $ = (id) => document.getElementById(id);

function authHeaders() {
  const key = $("api-key").value.trim();
  return key ? {Authorization: `Bearer ${key}`} : {};
}

// Fetch JSON from the API; a non-2xx answer throws with the server's OpenAI-shaped error message.
async function api(path, options = {}) {
  const response = await fetch(path, {...options, headers: {...authHeaders(), ...(options.headers || {})}});
  const text = await response.text();
  let body = text;
  try {
    body = JSON.parse(text);
  } catch (_) {
    // not JSON: keep the text, an error then shows the status line
  }
  if (!response.ok) {
    const message = body && body.error && body.error.message;
    throw new Error(message || `${response.status} ${response.statusText}`);
  }
  return body;
}

// Errors read as one line, whatever the server or the browser put in them.
const oneLine = (message) => String(message).split("\n")[0].trim();

function showTab(name) {
  for (const panel of PANELS) {
    $(`tab-${panel}`).setAttribute("aria-selected", String(panel === name));
    $(`panel-${panel}`).hidden = panel !== name;
  }
  history.replaceState(null, "", `#${name}`);
}

// --- readiness and the served models ------------------------------------------------------------------

async function waitUntilReady() {
  const badge = $("health");
  for (;;) {
    try {
      const response = await fetch("/health");
      if (response.ok) {
        badge.textContent = "ready";
        badge.dataset.state = "ready";
        return;
      }
      badge.textContent = "loading models…";
    } catch (_) {
      badge.textContent = "server unreachable";
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function loadModels() {
  const note = $("models-error");
  let models = null;
  try {
    models = (await api("/v1/models")).data;
    note.hidden = true;
  } catch (err) {
    // a wrong or missing API key lands here: say so once, not "nothing served" on every tab
    note.textContent = `Could not list the served models: ${oneLine(err.message)}`;
    note.hidden = false;
  }
  for (const panel of PANELS) {
    const ids = (models || []).filter((m) => m.task === TASKS[panel]).map((m) => m.id);
    $(`${panel}-model`).replaceChildren(...ids.map((id) => new Option(id, id)));
    $(`${panel}-none`).hidden = models === null || ids.length > 0;
    $(`${panel}-run`).disabled = ids.length === 0;
  }
  document.body.dataset.models = "loaded";
}

// --- one submit handler for every panel --------------------------------------------------------------

// Run `work` when the panel's form is submitted; the panel's data-state says busy, done or error.
function onSubmit(panel, work) {
  $(`form-${panel}`).addEventListener("submit", async (event) => {
    event.preventDefault();
    const section = $(`panel-${panel}`);
    const error = $(`${panel}-error`);
    const button = $(`${panel}-run`);
    section.dataset.state = "busy";
    button.disabled = true;
    error.hidden = true;
    try {
      await work();
      section.dataset.state = "done";
    } catch (err) {
      error.textContent = oneLine(err.message);
      error.hidden = false;
      section.dataset.state = "error";
    } finally {
      button.disabled = false;
    }
  });
}

function uploadForm(panel, fields) {
  const form = new FormData();
  form.append("file", $(`${panel}-file`).files[0]);
  form.append("model", $(`${panel}-model`).value);
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  return form;
}

function cell(tag, text) {
  const element = document.createElement(tag);
  element.textContent = text;
  return element;
}

// Show the chosen image beside the result before the server answers.
function previewOnChoose(panel) {
  $(`${panel}-file`).addEventListener("change", () => {
    const file = $(`${panel}-file`).files[0];
    const preview = $(`${panel}-preview`);
    if (preview.src) URL.revokeObjectURL(preview.src);
    preview.hidden = !file;
    if (file) preview.src = URL.createObjectURL(file);
  });
}

// --- Transcribe ----------------------------------------------------------------------------------------

// 83.456 -> "1:23.46"
function clock(seconds) {
  const minutes = Math.floor(seconds / 60);
  return `${minutes}:${(seconds - 60 * minutes).toFixed(2).padStart(5, "0")}`;
}

onSubmit("transcribe", async () => {
  $("transcribe-result").hidden = true;
  const result = await api("/v1/audio/transcriptions", {
    method: "POST", body: uploadForm("transcribe", {response_format: "verbose_json"})});
  $("transcribe-meta").textContent =
    `${clock(result.duration)} of audio · language: ${result.language} · ${result.segments.length} segment(s)`;
  $("transcribe-text").textContent = result.text.trim();
  $("transcribe-segments").tBodies[0].replaceChildren(...result.segments.map((s) => {
    const row = document.createElement("tr");
    row.append(cell("td", s.id), cell("td", clock(s.start)), cell("td", clock(s.end)), cell("td", s.text.trim()));
    return row;
  }));
  $("transcribe-result").hidden = false;
});

// --- Similarity ----------------------------------------------------------------------------------------

function cosine(a, b) {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb);
}

// Blue for similar, white for unrelated, red for opposite.
function shade(value) {
  const strength = Math.min(1, Math.abs(value));
  const hue = value >= 0 ? 215 : 0;
  return `hsl(${hue}, 75%, ${Math.round(100 - 55 * strength)}%)`;
}

onSubmit("similarity", async () => {
  const sentences = $("similarity-input").value.split("\n").map((s) => s.trim()).filter(Boolean);
  if (sentences.length === 0) throw new Error("Type at least one sentence.");
  const result = await api("/v1/embeddings", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({input: sentences, model: $("similarity-model").value, encoding_format: "float"})});
  const vectors = [...result.data].sort((a, b) => a.index - b.index).map((d) => d.embedding);

  const table = $("similarity-matrix");
  const head = document.createElement("tr");
  head.append(cell("th", ""), ...sentences.map((_, j) => cell("th", String(j + 1))));
  const rows = sentences.map((sentence, i) => {
    const row = document.createElement("tr");
    const label = cell("th", `${i + 1}. ${sentence}`);
    label.className = "sentence";
    row.append(label);
    for (let j = 0; j < sentences.length; j++) {
      const value = cosine(vectors[i], vectors[j]);
      const td = cell("td", value.toFixed(2));
      td.style.background = shade(value);
      if (Math.abs(value) > 0.6) td.classList.add("dark");
      td.title = `${sentences[i]}\n${sentences[j]}`;
      row.append(td);
    }
    return row;
  });
  table.replaceChildren(head, ...rows);
  table.hidden = false;
});

// --- Caption -------------------------------------------------------------------------------------------

previewOnChoose("caption");
onSubmit("caption", async () => {
  $("caption-result").hidden = true;
  const result = await api("/v1/images/captions", {
    method: "POST", body: uploadForm("caption", {attention: String($("caption-attention").checked)})});
  $("caption-text").textContent = result.caption;
  const map = $("caption-map");
  map.hidden = !result.attention_png;
  map.src = result.attention_png ? `data:image/png;base64,${result.attention_png}` : "";
  $("caption-result").hidden = false;
});

// --- Classify ------------------------------------------------------------------------------------------

previewOnChoose("classify");
onSubmit("classify", async () => {
  const table = $("classify-classes");
  table.hidden = true;
  const result = await api("/v1/images/classifications", {
    method: "POST", body: uploadForm("classify", {top_k: $("classify-top-k").value || "5"})});
  table.tBodies[0].replaceChildren(...result.classes.map((c) => {
    const row = document.createElement("tr");
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = `${(100 * c.score).toFixed(1)}%`;
    const barCell = document.createElement("td");
    barCell.className = "bar-cell";
    barCell.append(bar);
    row.append(cell("td", c.label), cell("td", `${(100 * c.score).toFixed(1)}%`), barCell);
    return row;
  }));
  table.hidden = false;
});

// --- start ---------------------------------------------------------------------------------------------

for (const panel of PANELS) $(`tab-${panel}`).addEventListener("click", () => showTab(panel));
showTab(PANELS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "transcribe");

// The key lives for this browser tab only; the models are listed again under the new key.
$("api-key").value = sessionStorage.getItem("zoo-api-key") || "";
$("api-key").addEventListener("change", () => {
  sessionStorage.setItem("zoo-api-key", $("api-key").value.trim());
  loadModels();
});

waitUntilReady().then(loadModels);
