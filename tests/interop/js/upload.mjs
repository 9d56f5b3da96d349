// Upload one file with tus-js-client (its Node build) and print what happened as JSON.
//
//   node upload.mjs '<options as JSON>'
//
// Options: endpoint, file (a path), source ("file": an fs.ReadStream, the default; "buffer":
// the whole file in a Buffer; "stream": a plain Readable, of unknown size), chunkSize, parallelUploads, metadata, headers, retryDelays, uploadUrl,
// overridePatchMethod, uploadDataDuringCreation, uploadLengthDeferred; and for the tests:
//   urlStorage        a JSON file for tus-js-client's FileUrlStorage (the upload URL is kept
//                     there under the file's fingerprint)
//   resume            look the file up in urlStorage and resume the previous upload
//   abortAfterChunks  call upload.abort() when that many PATCHes have been acknowledged
//
// Output (one line on stdout): {status: "success" | "aborted" | "error", uploadUrl, size,
// previousUploads, chunks: [[bytes, offset]...], bytesAccepted, requests: [{method, url,
// headers, status, responseHeaders}...], lastResponse: {status, headers}, error}.
// The exit status is 0 unless the script itself is misused.

import { createReadStream, readFileSync, statSync } from 'node:fs'
import process from 'node:process'
import { PassThrough } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { FileUrlStorage, Upload } from 'tus-js-client'

// Request headers worth reporting, spelt as tus-js-client sets them.
const TUS_HEADERS = [
  'Upload-Offset',
  'Upload-Length',
  'Upload-Defer-Length',
  'Upload-Concat',
  'Upload-Metadata',
  'X-HTTP-Method-Override',
  'Content-Type',
  'Tus-Resumable',
  'Upload-Draft-Interop-Version',
  'Upload-Complete',
]

function fail(message) {
  process.stderr.write(`upload.mjs: ${message}\n`)
  process.exit(2)
}

function pick(get, names) {
  const picked = {}
  for (const name of names) {
    const value = get(name)
    if (value !== undefined && value !== null) picked[name] = String(value)
  }
  return picked
}

function responseHeaders(res) {
  const raw = res.getUnderlyingObject()
  return raw?.headers ? { ...raw.headers } : {}
}

function finish(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0))
}

const options = JSON.parse(process.argv[2] ?? fail('one argument: the options as JSON'))
if (!options.file || !(options.endpoint || options.uploadUrl)) {
  fail('options need "file" and "endpoint" (or "uploadUrl")')
}

const size = statSync(options.file).size
const sources = {
  file: () => createReadStream(options.file),
  buffer: () => readFileSync(options.file),
  stream: () => createReadStream(options.file).pipe(new PassThrough()),
}
const input = (sources[options.source ?? 'file'] ?? fail(`unknown source ${options.source}`))()

const result = {
  status: null,
  uploadUrl: null,
  size,
  previousUploads: null,
  chunks: [],
  bytesAccepted: 0,
  requests: [],
  lastResponse: null,
  error: null,
}

const settings = {
  endpoint: options.endpoint ?? null,
  uploadUrl: options.uploadUrl ?? null,
  metadata: options.metadata ?? {},
  headers: options.headers ?? {},
  chunkSize: options.chunkSize ?? Number.POSITIVE_INFINITY,
  parallelUploads: options.parallelUploads ?? 1,
  protocol: options.protocol ?? 'tus-v1',
  retryDelays: options.retryDelays === undefined ? [0, 100, 500] : options.retryDelays,
  overridePatchMethod: Boolean(options.overridePatchMethod),
  uploadDataDuringCreation: Boolean(options.uploadDataDuringCreation),
  uploadLengthDeferred: Boolean(options.uploadLengthDeferred),
  storeFingerprintForResuming: Boolean(options.urlStorage),
  removeFingerprintOnSuccess: false,
  onBeforeRequest(req) {
    result.requests.push({
      method: req.getMethod(),
      url: req.getURL(),
      headers: pick((name) => req.getHeader(name), TUS_HEADERS),
      status: null,
      responseHeaders: null,
    })
  },
  onAfterResponse(req, res) {
    // Parallel partial uploads interleave: match the newest unanswered request of this kind.
    const entry = result.requests.findLast(
      (r) => r.status === null && r.method === req.getMethod() && r.url === req.getURL(),
    )
    if (entry) {
      entry.status = res.getStatus()
      entry.responseHeaders = responseHeaders(res)
    }
  },
  onChunkComplete(chunkSize, bytesAccepted) {
    result.chunks.push([chunkSize, bytesAccepted])
    result.bytesAccepted += chunkSize
    if (options.abortAfterChunks && result.chunks.length === options.abortAfterChunks) {
      upload.abort().then(async () => {
        result.status = 'aborted'
        result.uploadUrl = upload.url
        await storedForResuming()
        finish(result)
      })
    }
  },
  onSuccess({ lastResponse }) {
    result.status = 'success'
    result.uploadUrl = upload.url
    result.lastResponse = lastResponse
      ? { status: lastResponse.getStatus(), headers: responseHeaders(lastResponse) }
      : null
    finish(result)
  },
  onError(error) {
    result.status = 'error'
    result.uploadUrl = upload.url
    result.error = String(error?.message ?? error)
    const res = error?.originalResponse
    if (res) {
      result.lastResponse = {
        status: res.getStatus(),
        headers: responseHeaders(res),
        body: res.getBody(),
      }
    }
    finish(result)
  },
}
if (options.urlStorage) settings.urlStorage = new FileUrlStorage(options.urlStorage)

const upload = new Upload(input, settings)

// A parallel upload saves its partial URLs in the background: wait for them before leaving.
async function storedForResuming() {
  if (!options.urlStorage) return
  for (let attempt = 0; attempt < 100; attempt++) {
    if ((await upload.findPreviousUploads()).length > 0) return
    await sleep(50)
  }
  fail('the upload was not saved in the URL storage')
}

if (options.resume) {
  const previous = await upload.findPreviousUploads()
  result.previousUploads = previous.length
  if (previous.length > 0) upload.resumeFromPreviousUpload(previous[0])
}
upload.start()
