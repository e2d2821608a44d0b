// Drives aria2.js (npm `aria2` 4.1.2, unchanged) against a fetchdeck aria2 listener, the way front-ends built on
// it call it: one client over HTTP (no open()), one over its WebSocket (open(), then every call goes over the
// socket, and the onDownload* notifications arrive through its event API).
// Usage: node aria2js.mjs PORT SECRET DIRECT_URL HLS_URL THROTTLED_URL SLOW_URL MISSING_URL
//        node aria2js.mjs PORT SECRET - - - SLOW_URL - methods
//   methods: only the queue-position and option calls (aria2.changePosition, changeOption, getOption).
// When the throttled download has been paused and unpaused it prints {"need":"unthrottle"} and waits for a line
// on stdin (the test lifts the file server's throttle). Prints one JSON object last: every answer, the
// notifications in arrival order, and any error.
import { createInterface } from "node:readline";
import Aria2 from "aria2";

const [port, secret, directUrl, hlsUrl, throttledUrl, slowUrl, missingUrl, mode] = process.argv.slice(2);
const options = { host: "127.0.0.1", port: Number(port), secret };
const http = new Aria2(options);
const ws = new Aria2(options);
const out = { calls: {}, notes: [], wire: { http: [], ws: [] } };
const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();

async function until(what, seconds, check) {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; notes so far ${JSON.stringify(out.notes)}`);
    await new Promise((resolve) => setTimeout(resolve, 30));
  }
}

async function call(name, fn) {
  try {
    out.calls[name] = await fn();
  } catch (error) {
    out.calls[name] = { thrown: { name: error.name, code: error.code, message: error.message } };
  }
  return out.calls[name];
}

const noted = (event, gid) => out.notes.some(([e, g]) => e === event && g === gid);
const heard = (event, gid) => until(`${event} for ${gid}`, 20, () => noted(event, gid));
const status = (client, gid, word, more = () => true) => until(`${gid} to be ${word}`, 20, async () => {
  const struct = await client.call("tellStatus", gid);
  return struct.status === word && more(struct) ? struct : null;
});

http.on("output", (m) => out.wire.http.push(m));
ws.on("output", (m) => out.wire.ws.push(m));

async function flow() {
  // ---- over HTTP (fetch POST), before any socket is open
  await call("getVersion", () => http.call("getVersion"));
  await call("listMethods", () => http.listMethods()); // aria2.js sends the token to system.* too
  await call("listNotifications", () => http.listNotifications());
  await call("unknownGid", () => http.call("tellStatus", "0123456789abcdef"));
  await call("multicallHttp", () => http.multicall([["getGlobalStat"], ["getVersion"], ["tellStatus", "zz"]]));
  const batch = await http.batch([["getGlobalStat"], ["tellStatus", "0123456789abcdef"]]);
  out.calls.batchHttp = await Promise.all(batch.map((p) => p.then((r) => ({ result: r }),
    (e) => ({ thrown: { name: e.name, code: e.code, message: e.message } }))));

  // ---- the WebSocket: notifications through the event API, unprefixed names as aria2.js emits them
  for (const event of ["onDownloadStart", "onDownloadPause", "onDownloadStop", "onDownloadComplete",
    "onDownloadError"]) {
    ws.on(event, (params) => out.notes.push([event, params[0].gid, params.length]));
  }
  ws.on("aria2.onDownloadComplete", (params) => out.calls.prefixedCompleteEvents = [
    ...(out.calls.prefixedCompleteEvents ?? []), params[0].gid]);

  // a direct file added over HTTP: its notifications reach the socket
  const direct = await call("addDirect", () => http.call("addUri", [directUrl], { out: "direct.bin" }));
  await heard("onDownloadComplete", direct);
  await call("directDone", () => ws.call("tellStatus", direct));

  // an HLS stream over the socket
  const hls = await call("addHls", () => ws.call("addUri", [hlsUrl], { out: "stream.mp4" }));
  await heard("onDownloadComplete", hls);
  await call("hlsDone", () => ws.call("tellStatus", hls));
  await call("hlsFiles", () => ws.call("getFiles", hls));

  // a throttled file: active, paused, unpaused, then let through to the end
  const slow = await call("addThrottled", () => ws.call("addUri", [throttledUrl], { out: "throttled.bin" }));
  await heard("onDownloadStart", slow);
  // running, with bytes in (aria2c sends bitfield only once it knows the size)
  await call("throttledActive", () => status(ws, slow, "active", (s) => Number(s.completedLength) > 0));
  await call("tellActive", () => ws.call("tellActive", ["gid", "status", "totalLength"]));
  await call("pause", () => ws.call("pause", slow));
  await heard("onDownloadPause", slow);
  await call("throttledPaused", () => ws.call("tellStatus", slow, ["gid", "status", "downloadSpeed"]));
  await call("tellWaiting", () => ws.call("tellWaiting", 0, 1000, ["gid", "status"]));
  await call("pauseAgain", () => ws.call("pause", slow));
  await call("unpause", () => ws.call("unpause", slow));
  await until("a second onDownloadStart", 20, () => out.notes.filter(([e, g]) => e === "onDownloadStart"
    && g === slow).length === 2);
  process.stdout.write(JSON.stringify({ need: "unthrottle" }) + "\n");
  await lines.next();
  await heard("onDownloadComplete", slow);
  await call("throttledDone", () => ws.call("tellStatus", slow));

  // remove an active download: onDownloadStop; then removeDownloadResult as front-ends do
  const gone = await call("addSlow", () => ws.call("addUri", [slowUrl], { out: "slow.bin" }));
  await heard("onDownloadStart", gone);
  await call("remove", () => ws.call("remove", gone));
  await heard("onDownloadStop", gone);
  await call("removed", () => ws.call("tellStatus", gone, ["status", "errorCode"]));

  // a 404: Start then Error, and aria2's errorCode for "resource not found"
  const missing = await call("addMissing", () => ws.call("addUri", [missingUrl]));
  await heard("onDownloadError", missing);
  await call("missing", () => ws.call("tellStatus", missing, ["status", "errorCode", "errorMessage"]));

  // multicall and batch over the socket
  await call("multicallWs", () => ws.multicall([["tellStatus", direct, ["gid", "status"]], ["getGlobalStat"]]));
  const wsBatch = await ws.batch([["tellStopped", 0, 1000, ["gid", "status"]], ["getVersion"]]);
  out.calls.batchWs = await Promise.all(wsBatch);
  await call("tellStoppedBefore", () => ws.call("tellStopped", 0, 1000, ["gid", "status"]));
  await call("purge", () => ws.call("purgeDownloadResult"));
  await call("tellStoppedAfter", () => ws.call("tellStopped", 0, 1000, ["gid"]));
  await call("globalStat", () => ws.call("getGlobalStat"));
}

async function methods() {
  // three paused downloads: move the last to the front, then the first to the end; change one's options
  const queued = [];
  for (const name of ["q1.bin", "q2.bin", "q3.bin"]) {
    queued.push(await ws.call("addUri", [slowUrl], { out: name, pause: "true" }));
  }
  out.calls.queued = queued;
  await call("changePositionSet", () => ws.call("changePosition", queued[2], 0, "POS_SET"));
  await call("orderAfterSet", () => ws.call("tellWaiting", 0, 1000, ["gid"]));
  await call("changePositionEnd", () => ws.call("changePosition", queued[2], 0, "POS_END"));
  await call("orderAfterEnd", () => ws.call("tellWaiting", 0, 1000, ["gid"]));
  await call("changePositionCur", () => ws.call("changePosition", queued[2], -1, "POS_CUR"));
  await call("orderAfterCur", () => ws.call("tellWaiting", 0, 1000, ["gid"]));
  await call("changeOption", () => ws.call("changeOption", queued[0], { "max-download-limit": "100K" }));
  await call("getOption", () => ws.call("getOption", queued[0]));
  await call("getGlobalOption", () => ws.call("getGlobalOption"));
  for (const gid of queued) await ws.call("remove", gid);
}

try {
  await ws.open();
  if (mode === "methods") await methods();
  else await flow();
} catch (error) {
  out.error = String(error.stack ?? error.message ?? error);
} finally {
  try {
    if (ws.socket) await ws.close();
  } catch (error) {
    out.closeError = String(error);
  }
  stdin.close();
}
process.stdout.write(JSON.stringify(out) + "\n");
