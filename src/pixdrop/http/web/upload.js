// One file on its way to the server. Small files go in one request; larger ones as chunks,
// several in flight, each with its SHA-256 in Content-Digest. Pause aborts the requests in
// flight (an aborted chunk is simply missing on the server). Resume, also after a reload,
// asks the server what is missing and sends only that.
//
// Two figures describe the progress, and they are never mixed up:
// - `acked`: bytes the server has stored. A chunk counts once its PUT was answered 200/201,
//   or when GET /v1/uploads/{id} lists it as `received`. The bar, the percentage, the speed
//   and the time left all come from this figure only.
// - `inFlight`: bytes handed to the browser for requests not answered yet (XHR upload
//   progress). They may still be lost (pause, reload, network), so they only ever draw the
//   fainter "sending" part of the bar.

import * as api from "./api.js";
import { plan, refusal } from "./limits.js";
import * as store from "./store.js";

const PARALLEL_CHUNKS = 3;
/** Above this the whole-file sha256 is skipped: crypto.subtle needs the file in memory. */
const WHOLE_FILE_HASH_LIMIT = 256 * 1024 * 1024;
const CHUNK_ATTEMPTS = 5;
const COMPLETE_ATTEMPTS = 3;
const WHOLE = -1; // the in-flight slot of a one-request upload

/** Thrown in a run that was paused or cancelled, to unwind it quietly. */
class Stopped extends Error {}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Acknowledged bytes per second over the last several seconds. Acknowledgements come a
 * chunk at a time, so the rate is measured up to now, not up to the last one: while the
 * server acknowledges nothing, the rate falls (and the time left grows) instead of freezing.
 */
class Meter {
  constructor() {
    this.samples = [];
  }

  reset() {
    this.samples = [];
  }

  /** *bytes*: the acknowledged total, now. */
  add(bytes) {
    const now = performance.now();
    this.samples.push([now, bytes]);
    while (this.samples.length > 3 && now - this.samples[0][0] > 8000) this.samples.shift();
  }

  get rate() {
    if (this.samples.length < 2) return 0;
    const [t0, b0] = this.samples[0];
    const b1 = this.samples.at(-1)[1];
    const elapsed = performance.now() - t0;
    return elapsed < 300 ? 0 : Math.max(0, ((b1 - b0) * 1000) / elapsed);
  }
}

export class Upload {
  /**
   * *onChange(upload)* is called on every change. States: queued → preparing → sending →
   * finishing → done, or paused, failed (`retryable` says if trying again may help), cancelled.
   */
  constructor(file, limits, onChange) {
    this.file = file;
    this.limits = limits;
    this.onChange = onChange;
    this.key = store.fileKey(file);
    this.state = "queued";
    this.message = "";
    this.retryable = false;
    this.image = null;
    this.uploadId = null;
    this.chunkSize = 0;
    this.acked = 0; // bytes the server has stored (the sum of the chunks in `stored`)
    this.stored = new Set(); // indices of the chunks the server has stored
    this.inflight = new Map(); // chunk index (or WHOLE) → { loaded, abort }
    this.run = 0; // pause and cancel bump it; a run that sees a newer number stops
    this.meter = new Meter();
    const refused = refusal(file, limits);
    if (refused) this.fail(refused, false);
  }

  /** Bytes handed to the browser for requests the server has not answered yet. */
  get inFlight() {
    let total = 0;
    for (const entry of this.inflight.values()) total += entry.loaded;
    return Math.max(0, Math.min(total, this.file.size - this.acked));
  }

  get rate() {
    return this.meter.rate;
  }

  get active() {
    return ["preparing", "sending", "finishing"].includes(this.state);
  }

  get unfinished() {
    return !["done", "failed", "cancelled"].includes(this.state);
  }

  /** Run until done, failed, paused or cancelled (called by the page's queue). */
  async start() {
    const run = ++this.run;
    this.set("preparing");
    try {
      const { chunkSize } = plan(this.file.size, this.limits);
      const image = chunkSize ? await this.sendChunked(run, chunkSize) : await this.sendWhole(run);
      store.addImage(image);
      this.image = image;
      this.acked = this.file.size;
      this.set("done");
    } catch (error) {
      if (error instanceof Stopped || run !== this.run) return;
      this.halt();
      this.failed(error);
    }
  }

  pause() {
    if (!["queued", "preparing", "sending"].includes(this.state)) return;
    this.halt();
    this.set("paused");
    this.refresh();
  }

  /**
   * While paused, ask the server what it holds: a request aborted by the pause may still have
   * been stored, and "paused at N%" should be the server's own figure.
   */
  async refresh() {
    const run = this.run;
    if (!this.uploadId || !this.chunkSize) return;
    try {
      const status = await api.uploadStatus(this.uploadId);
      if (run !== this.run || this.state !== "paused") return;
      this.record(status.received);
      this.onChange(this);
    } catch {
      // Unknown or unreachable: the figure stays what the server acknowledged so far.
    }
  }

  /** Resume after a pause, or try again after a failure that may pass. */
  resume() {
    if (this.state === "paused" || (this.state === "failed" && this.retryable)) this.set("queued");
  }

  /** Stop for good and free the server's space. */
  async cancel() {
    if (!this.unfinished) return;
    const id = this.uploadId ?? store.unfinished()[this.key]?.id;
    this.halt();
    store.forgetUpload(this.key);
    this.set("cancelled");
    if (id) await api.cancelUpload(id).catch(() => {});
  }

  // --- one request ---------------------------------------------------------------------------

  async sendWhole(run) {
    const body = await this.file.arrayBuffer();
    const digest = await api.sha256(body);
    this.check(run);
    this.set("sending");
    const query = new URLSearchParams({ filename: this.file.name });
    const headers = {
      "Content-Type": this.file.type || "application/octet-stream",
      "Content-Digest": api.contentDigest(digest),
    };
    return this.transfer(run, WHOLE, "POST", `/v1/images?${query}`, body, headers);
  }

  // --- chunks --------------------------------------------------------------------------------

  async sendChunked(run, chunkSize) {
    const status = (await this.savedStatus(run)) ?? (await this.create(run, chunkSize));
    this.uploadId = status.id;
    this.chunkSize = status.chunk_size;
    this.record(status.received);
    let missing = status.missing;
    for (let attempt = 1; ; attempt += 1) {
      this.meter.reset();
      this.meter.add(this.acked); // speed counts from here, not from what an earlier visit sent
      this.set("sending");
      await this.sendMissing(run, missing);
      this.set("finishing");
      try {
        const image = await api.completeUpload(this.uploadId);
        store.forgetUpload(this.key);
        return image;
      } catch (error) {
        this.check(run);
        // A chunk the server lost (it says which): send those again.
        if (error.slug !== "upload-incomplete" || attempt === COMPLETE_ATTEMPTS) throw error;
        missing = error.problem.missing;
        const lost = new Set(missing);
        this.record([...this.stored].filter((i) => !lost.has(i)));
      }
    }
  }

  /** The server's view of the upload this file started earlier (kept in localStorage). */
  async savedStatus(run) {
    const saved = store.unfinished()[this.key];
    if (!saved) return null;
    try {
      const status = await api.uploadStatus(saved.id);
      this.check(run);
      return status;
    } catch (error) {
      this.check(run);
      if (error.status === 0 || error.status >= 500) throw error;
      store.forgetUpload(this.key); // expired or gone: start afresh
      return null;
    }
  }

  async create(run, chunkSize) {
    const file = this.file;
    const spec = { size: file.size, chunk_size: chunkSize, filename: file.name };
    if (file.type) spec.content_type = file.type;
    if (file.size <= WHOLE_FILE_HASH_LIMIT) {
      spec.sha256 = api.hex(await api.sha256(await file.arrayBuffer()));
    }
    this.check(run);
    const status = await api.createUpload(spec);
    if (this.state === "cancelled") {
      api.cancelUpload(status.id).catch(() => {}); // cancelled while it was being created
      throw new Stopped();
    }
    store.rememberUpload(file, status.id);
    this.check(run);
    return status;
  }

  chunkLength(index) {
    return Math.min(this.chunkSize, this.file.size - index * this.chunkSize);
  }

  /** The server's word on which chunks it holds (`received`): replaces what we counted. */
  record(received) {
    this.stored = new Set(received);
    this.acked = 0;
    for (const index of this.stored) this.acked += this.chunkLength(index);
  }

  /** A chunk's PUT was answered 200/201: it is stored. */
  acknowledge(index) {
    if (this.stored.has(index)) return;
    this.stored.add(index);
    this.acked += this.chunkLength(index);
    this.meter.add(this.acked);
  }

  async sendMissing(run, missing) {
    const todo = [...missing];
    const worker = async () => {
      for (let i = todo.shift(); i !== undefined; i = todo.shift()) await this.sendChunk(run, i);
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_CHUNKS, todo.length) }, worker));
  }

  async sendChunk(run, index) {
    const start = index * this.chunkSize;
    const body = await this.file.slice(start, start + this.chunkSize).arrayBuffer();
    const headers = {
      "Content-Type": "application/octet-stream",
      "Content-Digest": api.contentDigest(await api.sha256(body)),
    };
    const path = `/v1/uploads/${encodeURIComponent(this.uploadId)}/chunks/${index}`;
    for (let attempt = 1; ; attempt += 1) {
      try {
        await this.transfer(run, index, "PUT", path, body, headers);
        this.check(run); // paused meanwhile: the pause's GET /v1/uploads/{id} counts it
        this.acknowledge(index);
        this.onChange(this);
        return;
      } catch (error) {
        this.check(run);
        // 409 chunk-busy: another request is writing this chunk; the server says when to retry.
        const busy = error.slug === "chunk-busy";
        if (!(busy || error.status === 0 || error.status >= 500) || attempt === CHUNK_ATTEMPTS) {
          throw error;
        }
        await sleep(busy && error.retryAfter ? error.retryAfter * 1000 : 400 * 2 ** attempt);
      }
    }
  }

  // --- plumbing ------------------------------------------------------------------------------

  /** One request whose upload progress counts toward the file's; resolves to its JSON. */
  async transfer(run, slot, method, path, body, headers) {
    this.check(run);
    const entry = { loaded: 0, abort: null };
    const request = api.send(method, path, body, headers, (loaded) => {
      entry.loaded = loaded;
      this.onChange(this); // the "sending" part moves; the stored part does not
    });
    entry.abort = request.abort;
    this.inflight.set(slot, entry);
    try {
      return await request.done;
    } finally {
      if (this.inflight.get(slot) === entry) this.inflight.delete(slot);
    }
  }

  check(run) {
    if (run !== this.run) throw new Stopped();
  }

  /** Abort whatever is in flight and end the current run. */
  halt() {
    this.run += 1;
    for (const entry of this.inflight.values()) entry.abort();
    this.inflight.clear();
    this.meter.reset();
  }

  failed(error) {
    // The server refused this upload (4xx): drop it; a retry starts a new one.
    if (error.status >= 400 && error.status < 500) {
      store.forgetUpload(this.key);
      const gone = [404, 410, 422].includes(error.status); // 422: the server discarded it
      if (this.uploadId && !gone) api.cancelUpload(this.uploadId).catch(() => {});
    }
    const final = error.status === 413 || error.status === 422;
    this.fail(error.message, !final);
  }

  fail(message, retryable) {
    this.retryable = retryable;
    this.set("failed", message);
  }

  set(state, message = "") {
    this.state = state;
    this.message = message;
    this.onChange(this);
  }
}
