// The gallery of images uploaded from this browser: thumbnail, copy-link and delete.

import * as api from "./api.js";
import { bytes } from "./format.js";
import * as store from "./store.js";
import { announce } from "./views.js";

const cards = new Map(); // image id → its <li>

/** Show the thumbnail; until the server makes thumbnails, fall back to the original. */
function showThumbnail(img, image) {
  img.addEventListener("error", () => {
    if (img.dataset.fallback) {
      img.closest(".card").classList.add("broken");
      return;
    }
    img.dataset.fallback = "original";
    img.src = api.originalPath(image.id);
  });
  img.src = api.thumbPath(image.id);
}

async function copyLink(button, image, name) {
  const url = image.url ?? new URL(api.originalPath(image.id), location.href).href;
  try {
    await navigator.clipboard.writeText(url);
    button.textContent = "Copied";
    announce(`Link to ${name} copied.`);
    setTimeout(() => (button.textContent = "Copy link"), 2000);
  } catch {
    announce(`Could not copy; the link to ${name} is ${url}`);
  }
}

async function remove(card, image, name) {
  const message = card.querySelector(".card-message");
  if (image.delete_token) {
    if (!confirm(`Delete ${name} from the server? This cannot be undone.`)) return;
    try {
      await api.deleteImage(image.id, image.delete_token);
    } catch (error) {
      if (error.status !== 404) {
        message.textContent = error.message;
        message.hidden = false;
        return;
      }
    }
  }
  const next = card.nextElementSibling ?? card.previousElementSibling;
  store.removeImage(image.id);
  syncGallery();
  announce(image.delete_token ? `${name} deleted.` : `${name} removed from the list.`);
  (next?.querySelector("button") ?? document.getElementById("gallery-title")).focus();
}

function makeCard(image) {
  const template = document.getElementById("card-template");
  const card = template.content.firstElementChild.cloneNode(true);
  const name = image.filename || "Untitled image";
  card.dataset.id = image.id;
  const link = card.querySelector(".card-image");
  link.href = api.originalPath(image.id);
  const img = link.querySelector("img");
  img.alt = name;
  showThumbnail(img, image);
  card.querySelector(".card-name").textContent = name;
  card.querySelector(".card-meta").textContent =
    `${image.width}×${image.height} · ${bytes(image.size)}`;
  const copy = card.querySelector(".copy");
  copy.setAttribute("aria-label", `Copy link to ${name}`);
  copy.addEventListener("click", () => copyLink(copy, image, name));
  const del = card.querySelector(".delete");
  const label = image.delete_token ? "Delete" : "Remove";
  del.textContent = label;
  del.setAttribute("aria-label", image.delete_token ? `Delete ${name}` : `Remove ${name} from this list`);
  del.addEventListener("click", () => remove(card, image, name));
  return card;
}

/** Make the gallery match what is stored, keeping the cards (and images) already shown. */
export function syncGallery() {
  const list = document.getElementById("gallery");
  const images = store.images();
  const ids = new Set(images.map((image) => image.id));
  for (const [id, card] of cards) {
    if (!ids.has(id)) {
      card.remove();
      cards.delete(id);
    }
  }
  images.forEach((image, position) => {
    let card = cards.get(image.id);
    if (!card) {
      card = makeCard(image);
      cards.set(image.id, card);
    }
    if (list.children[position] !== card) list.insertBefore(card, list.children[position] ?? null);
  });
  document.getElementById("gallery-empty").hidden = images.length > 0;
}
