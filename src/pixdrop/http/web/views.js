// The upload list: one item per file, with its progress bar, figures and buttons.
//
// The bar is two <progress> elements on top of each other. The visible, accessible one is
// what the server has stored (acknowledged chunks); under it, fainter and hidden from
// assistive technology, what is still on its way. Every figure in words (percentage, speed,
// time left, announcements) is about stored bytes only.

import { bytes, duration } from "./format.js";

const live = () => document.getElementById("announcer");

/** Say *text* to screen readers, politely (the region is aria-live="polite"). */
export function announce(text) {
  live().textContent = text;
}

const share = (count, total) => (total ? Math.floor((count / total) * 100) : 0);

/** The share of the file the server has stored, in whole percent (rounded down). */
export function percent(upload) {
  return share(upload.acked, upload.file.size);
}

/** Stored plus on its way: where the fainter "sending" part of the bar ends. */
function reach(upload) {
  return upload.state === "sending" ? share(upload.acked + upload.inFlight, upload.file.size) : 0;
}

function figures(upload) {
  const pct = percent(upload);
  switch (upload.state) {
    case "queued":
      return "Waiting";
    case "preparing":
      return "Preparing…";
    case "sending": {
      const rate = upload.rate;
      if (!rate) return `${pct}% stored`;
      const left = (upload.file.size - upload.acked) / rate;
      return `${pct}% stored · ${bytes(rate)}/s · ${duration(left)} left`;
    }
    case "paused":
      return upload.acked ? `Paused at ${pct}%, stored on the server` : "Paused";
    case "finishing":
      return "Checking the image…";
    case "done": {
      const image = upload.image;
      return `Done · ${image.width}×${image.height} ${String(image.format).toUpperCase()}`;
    }
    default:
      return "Not uploaded";
  }
}

/** The button that pauses, resumes or retries; null when none applies. */
function toggleLabel(upload) {
  if (["queued", "preparing", "sending"].includes(upload.state)) return "Pause";
  if (upload.state === "paused") return "Resume";
  if (upload.state === "failed" && upload.retryable) return "Retry";
  return null;
}

/** Cancel while unfinished, Remove (from the list) once over; none while finishing. */
function dismissLabel(upload) {
  if (upload.state === "finishing") return null;
  return upload.unfinished ? "Cancel" : "Remove";
}

function setButton(button, label, name) {
  button.hidden = label === null;
  if (label === null) return;
  button.textContent = label;
  button.setAttribute("aria-label", `${label} ${name}`);
}

/** A new list item for *upload*; the handlers get the upload. */
export function uploadItem(upload, { onToggle, onDismiss }) {
  const template = document.getElementById("upload-template");
  const item = template.content.firstElementChild.cloneNode(true);
  const name = upload.file.name || "pasted image";
  item.querySelector(".item-name").textContent = name;
  item.querySelector(".item-size").textContent = bytes(upload.file.size);
  item.querySelector(".item-progress").setAttribute("aria-label", `Upload of ${name}`);
  item.querySelector(".toggle").addEventListener("click", () => onToggle(upload));
  item.querySelector(".dismiss").addEventListener("click", () => onDismiss(upload));
  renderUpload(item, upload);
  return item;
}

export function renderUpload(item, upload) {
  const name = upload.file.name || "pasted image";
  const failed = upload.state === "failed";
  item.dataset.state = upload.state;
  // Exact byte counts, for whoever inspects the page (and the tests).
  item.dataset.stored = String(failed ? 0 : upload.acked);
  item.dataset.sending = String(upload.state === "sending" ? upload.inFlight : 0);
  item.querySelector(".item-progress").value = failed ? 0 : percent(upload);
  item.querySelector(".item-sending").value = failed ? 0 : reach(upload);
  item.querySelector(".item-status").textContent = figures(upload);
  setButton(item.querySelector(".toggle"), toggleLabel(upload), name);
  setButton(item.querySelector(".dismiss"), dismissLabel(upload), name);
  const message = item.querySelector(".item-message");
  message.hidden = !upload.message;
  message.textContent = upload.message;
}

/** What to tell a screen reader when *upload* enters its current state. */
export function stateNews(upload) {
  const name = upload.file.name || "pasted image";
  const stored = upload.acked ? ` at ${percent(upload)}%, stored on the server` : "";
  const news = {
    sending: `Uploading ${name}.`,
    paused: `${name} paused${stored}.`,
    done: `${name} uploaded.`,
    failed: `${name} was not uploaded: ${upload.message}`,
    cancelled: `${name} cancelled.`,
  };
  return news[upload.state] ?? null;
}
