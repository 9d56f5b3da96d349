// What this browser remembers in localStorage: unfinished uploads, so that picking the same
// file again after a reload resumes it, and the images uploaded from here, for the gallery.

const UNFINISHED = "pixdrop.unfinished";
const API_KEY = "pixdrop.apiKey";
const GALLERY = "pixdrop.gallery";
const IMAGE_FIELDS = ["id", "url", "filename", "size", "width", "height", "format", "delete_token"];

function read(key, fallback) {
  try {
    return JSON.parse(localStorage.getItem(key)) ?? fallback;
  } catch {
    return fallback;
  }
}

function write(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or disabled: uploads still work, the page just forgets them.
  }
}

/** A file is the same file again when its name, size and last-modified time match. */
export const fileKey = (file) => JSON.stringify([file.name, file.size, file.lastModified]);

/** Unfinished uploads by file key: `{ id, name, size, saved }`. */
export const unfinished = () => read(UNFINISHED, {});

export function rememberUpload(file, id) {
  const all = unfinished();
  all[fileKey(file)] = { id, name: file.name, size: file.size, saved: Date.now() };
  write(UNFINISHED, all);
}

export function forgetUpload(key) {
  const all = unfinished();
  delete all[key];
  write(UNFINISHED, all);
}

/** Drop entries older than the server keeps unfinished uploads (*ttl* seconds). */
export function pruneUnfinished(ttl) {
  const all = unfinished();
  const oldest = Date.now() - ttl * 1000;
  for (const [key, entry] of Object.entries(all)) if (!(entry.saved > oldest)) delete all[key];
  write(UNFINISHED, all);
}

/** The gallery, newest first. */
export const images = () => read(GALLERY, []);

export function addImage(image) {
  const kept = Object.fromEntries(IMAGE_FIELDS.map((field) => [field, image[field] ?? null]));
  // Completing an upload twice answers without the token: keep the one we have.
  kept.delete_token ??= images().find((i) => i.id === image.id)?.delete_token ?? null;
  write(GALLERY, [kept, ...images().filter((i) => i.id !== image.id)]);
}

export function removeImage(id) {
  write(GALLERY, images().filter((i) => i.id !== id));
}

/** Call *listener* when another tab changes what is stored. */
export function onOtherTab(listener) {
  window.addEventListener("storage", (event) => {
    if (event.key === null || event.key.startsWith("pixdrop.")) listener();
  });
}

/** The API key this browser was given (servers in --auth keys mode ask for one), or null. */
export function apiKey() {
  try {
    return localStorage.getItem(API_KEY);
  } catch {
    return null;
  }
}

export function rememberApiKey(key) {
  try {
    localStorage.setItem(API_KEY, key);
  } catch {
    // Storage disabled: the key lasts as long as the page.
  }
}

export function forgetApiKey() {
  try {
    localStorage.removeItem(API_KEY);
  } catch {
    // Nothing kept, nothing to forget.
  }
}
