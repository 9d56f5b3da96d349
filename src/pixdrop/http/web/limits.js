// The limits the server publishes (GET /v1/limits) and what the page decides from them:
// whether a file may be sent at all, and whether it goes in one request or in chunks.

import { bytes, either } from "./format.js";

const NAMES = { jpeg: "JPEG", png: "PNG", gif: "GIF", webp: "WebP", avif: "AVIF", tiff: "TIFF" };

/** The accepted formats in words: "JPEG, PNG, GIF, WebP, AVIF or TIFF". */
export function formats(limits) {
  return either(limits.formats.map((f) => NAMES[f] ?? f.toUpperCase()));
}

/** One line for the page header. */
export function summary(limits) {
  return `${formats(limits)} images, up to ${bytes(limits.max_image_size)} each.`;
}

/**
 * Why *file* breaks a published limit, in a sentence; null when it may be sent.
 * The type check trusts the browser only when it names a type: files it cannot
 * name go to the server, which looks at the bytes and says what they are.
 */
export function refusal(file, limits) {
  if (file.size === 0) return "This file is empty.";
  if (file.size > limits.max_image_size) {
    return `This file is ${bytes(file.size)}; the server accepts images up to ${bytes(limits.max_image_size)}.`;
  }
  if (file.size > limits.max_chunk_size * limits.max_chunks) {
    return `This file is ${bytes(file.size)}, too large to send in ${limits.max_chunks} chunks.`;
  }
  if (file.type && !limits.content_types.includes(file.type)) {
    const names = formats(limits);
    const article = /^[AEIOU]/.test(names) ? "an" : "a";
    return `This file's type is ${file.type}, which the server does not accept; send ${article} ${names} image.`;
  }
  return null;
}

/**
 * How to send *size* bytes: `{ chunkSize: 0 }` for one request (small files), else the
 * chunk size: the server's default, larger only if the file would need too many chunks.
 */
export function plan(size, limits) {
  if (size <= Math.min(limits.default_chunk_size, limits.max_request_size)) return { chunkSize: 0 };
  const fewEnough = Math.ceil(size / limits.max_chunks);
  const wanted = Math.max(limits.default_chunk_size, fewEnough, limits.min_chunk_size);
  return { chunkSize: Math.min(wanted, limits.max_chunk_size) };
}
