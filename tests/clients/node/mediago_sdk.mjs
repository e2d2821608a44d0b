// Drives MediaGo's own SDK (@mediago/core-sdk from npm) against a fetchdeck, the way its users call it.
// Usage: node mediago_sdk.mjs BASE_URL FAST_FILE_URL SLOW_FILE_URL
// Prints one JSON object: every call's result (or error message) and the SSE events received.
import { DownloadType, MediaGoClient } from "@mediago/core-sdk";

const [baseURL, fastUrl, slowUrl] = process.argv.slice(2);
const client = new MediaGoClient({ baseURL });
const out = { calls: {}, events: [] };
const deadline = (seconds) => Date.now() + seconds * 1000;

async function until(what, seconds, check) {
  const end = deadline(seconds);
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function call(name, fn) {
  try {
    out.calls[name] = await fn();
  } catch (error) {
    out.calls[name] = { thrown: String(error.message ?? error) };
  }
  return out.calls[name];
}

const events = client.streamEvents();
let opened = false;
events.on("open", () => { opened = true; });
for (const name of ["download-start", "download-success", "download-stop", "download-failed"]) {
  events.on(name, (payload) => out.events.push({ event: name, payload }));
}
const sawEvent = (name, id) => out.events.some((e) => e.event === name && e.payload.id === id);

try {
  await until("the event stream to open", 10, () => opened);
  await call("health", () => client.health());
  const created = await call("createTask", () => client.createTask({
    type: DownloadType.Direct, url: fastUrl, name: "sdk-file.bin",
    headers: ["X-Sdk: yes", "Referer: http://origin.example/page"],
  }));
  const id = created.data.id;
  await call("getTask", () => until("the task to succeed", 30, async () => {
    const task = await client.getTask(id);
    return task.data.status === "success" ? task : null;
  }));
  await until("download-success", 10, () => sawEvent("download-success", id));
  await call("listTasks", () => client.listTasks());
  await call("getTaskLogs", () => client.getTaskLogs(id));

  const slow = await call("createSlow", () => client.createTask({ type: "direct", url: slowUrl, name: "slow.bin" }));
  const slowId = slow.data.id;
  await call("getSlowRunning", () => until("the slow task to download", 30, async () => {
    const task = await client.getTask(slowId);
    return task.data.status === "downloading" && task.data.percent > 0 ? task : null;
  }));
  await call("stopTask", () => client.stopTask(slowId));
  await until("download-stop", 10, () => sawEvent("download-stop", slowId));
  await call("getSlowStopped", () => client.getTask(slowId));
  await call("updateConfig", () => client.updateConfig({ maxRunner: 2 }));
  await call("getMissing", () => client.getTask("999999"));
} catch (error) {
  out.error = String(error.message ?? error);
} finally {
  events.close();
}
process.stdout.write(JSON.stringify(out) + "\n");
