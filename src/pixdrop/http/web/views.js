// The upload list: one item per file, with its progress bar, figures and buttons.

import { bytes, duration } from "./format.js";

const live = () => document.getElementById("announcer");

/** Say *text* to screen readers, politely (the region is aria-live="polite"). */
export function announce(text) {
  live().textContent = text;
}

export function percent(upload) {
  return upload.file.size ? Math.floor((upload.sent / upload.file.size) * 100) : 0;
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
      if (!rate) return `${pct}%`;
      const left = (upload.file.size - upload.sent) / rate;
      return `${pct}% · ${bytes(rate)}/s · ${duration(left)} left`;
    }
    case "paused":
      return `Paused at ${pct}%`;
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
  item.dataset.state = upload.state;
  item.querySelector(".item-progress").value = upload.state === "failed" ? 0 : percent(upload);
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
  const news = {
    sending: `Uploading ${name}.`,
    paused: `${name} paused at ${percent(upload)}%.`,
    done: `${name} uploaded.`,
    failed: `${name} was not uploaded: ${upload.message}`,
    cancelled: `${name} cancelled.`,
  };
  return news[upload.state] ?? null;
}
