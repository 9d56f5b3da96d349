// The upload page: takes files from the file dialog, drag-and-drop and paste, queues them,
// and keeps the upload list, the unfinished list and the gallery up to date.

import * as api from "./api.js";
import { bytes } from "./format.js";
import { summary } from "./limits.js";
import * as store from "./store.js";
import { syncGallery } from "./gallery.js";
import { Upload } from "./upload.js";
import { announce, percent, renderUpload, stateNews, uploadItem } from "./views.js";

const FILES_AT_ONCE = 2;
const $ = (id) => document.getElementById(id);

const uploads = [];
const items = new Map(); // upload → its <li>
const seen = new WeakMap(); // upload → [state, quarter] last announced
const dirty = new Set();
let limits = null;
let pumping = false;

/** Start queued uploads while fewer than FILES_AT_ONCE are running. */
function pump() {
  if (pumping) return;
  pumping = true;
  queueMicrotask(() => {
    pumping = false;
    let running = uploads.filter((u) => u.active).length;
    for (const upload of uploads) {
      if (running >= FILES_AT_ONCE) break;
      if (upload.state === "queued") {
        running += 1;
        upload.start();
      }
    }
  });
}

function changed(upload) {
  const [state, quarter] = seen.get(upload) ?? [];
  const nowQuarter = Math.floor(percent(upload) / 25);
  if (upload.state !== state) {
    const news = stateNews(upload);
    if (news) announce(news);
    if (upload.state === "done") syncGallery();
    renderPending();
    pump();
  } else if (upload.state === "sending" && nowQuarter > quarter && nowQuarter < 4) {
    announce(`${upload.file.name}: ${nowQuarter * 25}% stored on the server.`);
  }
  seen.set(upload, [upload.state, nowQuarter]);
  if (upload.state === "cancelled") {
    dismiss(upload);
    return;
  }
  // Progress events come fast: draw at most once a frame.
  if (dirty.size === 0) requestAnimationFrame(draw);
  dirty.add(upload);
}

/** Redraw what is sending once a second: the speed falls while the server acknowledges nothing. */
function redrawSending() {
  for (const upload of uploads) if (upload.state === "sending") changed(upload);
}

function draw() {
  for (const upload of dirty) {
    const item = items.get(upload);
    if (item) renderUpload(item, upload);
  }
  dirty.clear();
}

function dismiss(upload) {
  const item = items.get(upload);
  if (!item) return;
  const hadFocus = item.contains(document.activeElement);
  const next = item.nextElementSibling ?? item.previousElementSibling;
  item.remove();
  items.delete(upload);
  uploads.splice(uploads.indexOf(upload), 1);
  $("queue-section").hidden = uploads.length === 0;
  if (hadFocus) (next?.querySelector("button:not([hidden])") ?? $("choose")).focus();
  renderPending();
}

const handlers = {
  onToggle: (upload) => (upload.state === "paused" || upload.state === "failed" ? upload.resume() : upload.pause()),
  onDismiss: (upload) => (upload.unfinished ? upload.cancel() : dismiss(upload)),
};

function add(files) {
  for (const file of files) {
    const key = store.fileKey(file);
    const twin = uploads.find((u) => u.key === key && u.unfinished);
    if (twin) {
      announce(`${file.name} is already in the list.`);
      continue;
    }
    const upload = new Upload(file, limits, changed);
    uploads.push(upload);
    const item = uploadItem(upload, handlers);
    items.set(upload, item);
    $("queue").append(item);
    seen.set(upload, [upload.state, 0]);
  }
  $("queue-section").hidden = uploads.length === 0;
  renderPending();
  pump();
}

/** Uploads interrupted earlier (another visit) that no file in the list is resuming. */
function renderPending() {
  const active = new Set(uploads.filter((u) => u.unfinished).map((u) => u.key));
  const entries = Object.entries(store.unfinished()).filter(([key]) => !active.has(key));
  const template = $("pending-template");
  $("pending-list").replaceChildren(
    ...entries.map(([key, entry]) => {
      const item = template.content.firstElementChild.cloneNode(true);
      item.querySelector(".pending-name").textContent = `${entry.name} (${bytes(entry.size)})`;
      const forget = item.querySelector(".forget");
      forget.setAttribute("aria-label", `Forget ${entry.name}`);
      forget.addEventListener("click", async () => {
        store.forgetUpload(key);
        renderPending();
        $("choose").focus();
        await api.cancelUpload(entry.id).catch(() => {});
      });
      return item;
    }),
  );
  $("pending").hidden = entries.length === 0;
}

function wireInputs() {
  const input = $("file-input");
  $("choose").addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    add(input.files);
    input.value = "";
  });
  // A drop anywhere on the page counts (and never makes the browser open the file).
  document.addEventListener("dragover", (event) => {
    event.preventDefault();
    document.body.classList.add("dragging");
  });
  document.addEventListener("dragleave", (event) => {
    if (!event.relatedTarget) document.body.classList.remove("dragging");
  });
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    document.body.classList.remove("dragging");
    if (event.dataTransfer?.files.length) add(event.dataTransfer.files);
  });
  document.addEventListener("paste", (event) => {
    const files = event.clipboardData?.files;
    if (!files?.length) return;
    event.preventDefault();
    add(files);
  });
}

/** In --auth keys mode the server answers 401 until the page has a key: ask for one, once. */
function askForKey() {
  const form = $("key-form");
  form.hidden = false;
  $("key-input").focus();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("key-input").value.trim();
    if (!value) return;
    store.rememberApiKey(value);
    location.reload();
  });
}

function offerToForget() {
  const button = $("forget-key");
  button.hidden = false;
  button.addEventListener("click", () => {
    store.forgetApiKey();
    location.reload();
  });
}

async function main() {
  const key = store.apiKey();
  api.useKey(key);
  if (key) offerToForget();
  try {
    limits = await api.limits();
  } catch (error) {
    if (error.status === 401) {
      $("limits").textContent = "";
      if (key) {
        $("page-error").textContent = `The server refused the API key: ${error.message}`;
        $("page-error").hidden = false;
      }
      askForKey();
      return;
    }
    $("limits").textContent = "";
    $("page-error").textContent = `The server's limits could not be loaded: ${error.message}`;
    $("page-error").hidden = false;
    return;
  }
  $("limits").textContent = summary(limits);
  $("file-input").accept = limits.content_types.join(",");
  store.pruneUnfinished(limits.upload_ttl);
  wireInputs();
  setInterval(redrawSending, 1000);
  renderPending();
  syncGallery();
  store.onOtherTab(() => {
    renderPending();
    syncGallery();
  });
  document.body.dataset.ready = "true"; // the page is wired (tests wait for this)
}

main();
