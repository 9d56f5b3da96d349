// @tus/server with @tus/file-store on 127.0.0.1: the Node.js peer of pixdrop's benchmark.
//
//   node tus_server.mjs PORT DIRECTORY
//
// One process, the stock configuration of the package's own README: no hooks, no expiry,
// files under DIRECTORY (each upload is DIRECTORY/<id> plus DIRECTORY/<id>.json).
import { FileStore } from "@tus/file-store";
import { Server } from "@tus/server";

const [port, directory] = process.argv.slice(2);
if (!port || !directory) {
  console.error("usage: node tus_server.mjs PORT DIRECTORY");
  process.exit(2);
}

const server = new Server({
  path: "/files",
  datastore: new FileStore({ directory }),
});

const listener = server.listen({ host: "127.0.0.1", port: Number(port) });
listener.on("listening", () => console.error(`@tus/server listening on 127.0.0.1:${port}`));
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => listener.close(() => process.exit(0)));
}
