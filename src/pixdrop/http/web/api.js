// The server's HTTP API as the page uses it (docs/api.md). Every failure is an ApiError whose
// message is a sentence for people: the `detail` of the server's problem body when there is one.

export class ApiError extends Error {
  constructor(message, { status = 0, problem = null, retryAfter = null, aborted = false } = {}) {
    super(message);
    this.status = status; // 0: no answer (network failure or aborted)
    this.problem = problem; // the RFC 9457 body, if any
    this.retryAfter = retryAfter; // seconds, from Retry-After
    this.aborted = aborted;
  }

  /** The problem type's last segment: "chunk-busy", "upload-incomplete", ... */
  get slug() {
    return String(this.problem?.type ?? "").split("/").pop();
  }
}

/** The API key sent with every request (set by the page from the browser's storage). */
let key = null;

export function useKey(value) {
  key = value || null;
}

const withKey = (headers) => (key ? { ...headers, Authorization: `Bearer ${key}` } : headers);

const UNREACHABLE = "The server could not be reached; check the connection and try again.";

function failure(status, text, contentType, retryAfter) {
  let problem = null;
  if (/json/.test(contentType ?? "")) {
    try {
      problem = JSON.parse(text);
    } catch {
      problem = null;
    }
  }
  const message = problem?.detail || problem?.title || `The server answered with status ${status}.`;
  return new ApiError(message, { status, problem, retryAfter: Number(retryAfter) || null });
}

function parse(text) {
  return text ? JSON.parse(text) : null;
}

async function call(method, path, { json, headers = {} } = {}) {
  const init = { method, headers: withKey(headers) };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(UNREACHABLE);
  }
  const text = await response.text();
  const h = response.headers;
  if (!response.ok) throw failure(response.status, text, h.get("Content-Type"), h.get("Retry-After"));
  return parse(text);
}

const at = (id) => encodeURIComponent(id);

export const limits = () => call("GET", "/v1/limits");
export const createUpload = (spec) => call("POST", "/v1/uploads", { json: spec });
export const uploadStatus = (id) => call("GET", `/v1/uploads/${at(id)}`);
export const completeUpload = (id) => call("POST", `/v1/uploads/${at(id)}/complete`);
export const cancelUpload = (id) => call("DELETE", `/v1/uploads/${at(id)}`);
export const deleteImage = (id, token) =>
  call("DELETE", `/v1/images/${at(id)}`, { headers: { "Pixdrop-Delete-Token": token } });

/** Same-origin paths for an image (the page's CSP allows images from 'self' only). */
export const thumbPath = (id) => `/v1/images/${at(id)}/thumb`;
export const originalPath = (id) => `/v1/images/${at(id)}/original`;

/**
 * Send *body* with XMLHttpRequest, which (unlike fetch) reports upload progress:
 * `onProgress(bytesSent)`. Returns `{ done, abort }`; `done` resolves to the parsed JSON.
 */
export function send(method, path, body, headers, onProgress) {
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    xhr.open(method, path);
    for (const [name, value] of Object.entries(withKey(headers))) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(parse(xhr.responseText));
        return;
      }
      const header = (name) => xhr.getResponseHeader(name);
      reject(failure(xhr.status, xhr.responseText, header("Content-Type"), header("Retry-After")));
    };
    xhr.onerror = () => reject(new ApiError(UNREACHABLE));
    xhr.onabort = () => reject(new ApiError("Stopped.", { aborted: true }));
    xhr.send(body);
  });
  return { done, abort: () => xhr.abort() };
}

/** SHA-256 of *buffer* as bytes (needs a secure context: https, localhost or 127.0.0.1). */
export async function sha256(buffer) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", buffer));
}

export const hex = (digest) => Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");

/** An RFC 9530 field value: `sha-256=:<base64>:`. */
export const contentDigest = (digest) => `sha-256=:${btoa(String.fromCharCode(...digest))}:`;
