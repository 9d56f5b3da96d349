// Drive tus-js-client against a tus server for pixdrop's benchmark; print one JSON line.
//
//   node tus_client.mjs JOB.json
//
// JOB: {"endpoint": "http://127.0.0.1:PORT/files/", "files": [PATH, ...],
//       "chunk_size": BYTES or null (one PATCH per file), "parallel": N (parallelUploads,
//       which needs the server's concatenation extension), "concurrency": N (files at once),
//       "creation_with_upload": BOOL (the body goes with the POST)}
// Prints {"seconds", "latencies", "requests", "bytes", "urls", "images"}: the wall-clock time
// from the first request to the last answer, each file's time, how many upload requests
// carried data (one per chunk), and the [id, delete token] of each image a pixdrop server
// named in its Pixdrop-Image and Pixdrop-Delete-Token headers (so the harness can delete them
// afterwards). Retries are off, so any failure ends the run with exit status 1.
import { createReadStream, readFileSync, statSync } from "node:fs";
import { basename, extname } from "node:path";
import { performance } from "node:perf_hooks";
import { Upload } from "tus-js-client";

const TYPES = { ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".tif": "image/tiff", ".png": "image/png" };

const job = JSON.parse(readFileSync(process.argv[2], "utf8"));
const chunkSize = job.chunk_size ?? Number.POSITIVE_INFINITY;

function uploadOne(path) {
  return new Promise((resolve, reject) => {
    const upload = new Upload(createReadStream(path), {
      endpoint: job.endpoint,
      chunkSize,
      parallelUploads: job.parallel ?? 1,
      uploadDataDuringCreation: Boolean(job.creation_with_upload),
      retryDelays: null,
      storeFingerprintForResuming: false,
      metadata: { filename: basename(path), filetype: TYPES[extname(path)] ?? "application/octet-stream" },
      onAfterResponse: (_request, response) => {
        const token = response.getHeader("Pixdrop-Delete-Token");
        const named = /id="([^"]+)"/.exec(response.getHeader("Pixdrop-Image") ?? "");
        if (token && named) images.push([named[1], token]);
      },
      onError: reject,
      onSuccess: () => resolve(upload.url),
    });
    upload.start();
  });
}

const files = job.files;
const images = [];
const latencies = new Array(files.length);
const urls = new Array(files.length);
let next = 0;

async function worker() {
  while (next < files.length) {
    const index = next++;
    const started = performance.now();
    urls[index] = await uploadOne(files[index]);
    latencies[index] = (performance.now() - started) / 1000;
  }
}

let requests = 0;
let bytes = 0;
for (const path of files) {
  const size = statSync(path).size;
  bytes += size;
  requests += Number.isFinite(chunkSize) ? Math.max(1, Math.ceil(size / chunkSize)) : 1;
}

try {
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.min(job.concurrency ?? 1, files.length) }, worker));
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ seconds, latencies, requests, bytes, urls, images }));
} catch (error) {
  console.error(`tus-js-client: ${error?.message ?? error}`);
  process.exit(1);
}
