// fetchdeck's web page: the task table over ONE native SSE stream, actions over the native API.
// Nothing from a task (name, URL, error, log line) is ever parsed as HTML: rows and panels are
// built with DOM APIs and filled with textContent. Events only mark what changed; one render per
// animation frame paints it, timed with performance.measure("fd-render").

import {api, auth, call, ApiError} from "./api.js";
import {EventStream} from "./sse.js";
import {VirtualList} from "./vlist.js";
import {SpeedGraph} from "./graph.js";
import * as fmt from "./fmt.js";

const $ = (id) => document.getElementById(id);
const THEME_KEY = "fetchdeck.theme";
const PAGE_SIZE = 10000; // the native list's largest page
const FETCH_ONE_MAX = 50; // a bigger download-create reloads the list
const GRAPH_SECONDS = 180; // the speed graph: the last 3 minutes
const ACTIVE = new Set(["waiting", "downloading"]);

const state = {
  tasks: new Map(), // id → task (the native DownloadTask, kept up to date by events)
  order: [], // every id, newest first
  view: [], // the ids that pass the filter, newest first
  viewDirty: true,
  countsDirty: true,
  filterText: "",
  filterStatus: "",
  selected: null,
  cursor: null, // the keyboard's row (roving tabindex): its id, or null for the first row in view
  detailsDirty: false,
  loaded: false,
  loading: null,
  early: [], // events that came before the list
  scheduled: false,
  stream: null,
  renders: 0,
};

let list = null;
let graph = null;

// ------------------------------------------------------------------ render (once per frame)

function schedule() {
  if (state.scheduled) return;
  state.scheduled = true;
  requestAnimationFrame(frame);
}

function frame() {
  state.scheduled = false;
  performance.mark("fd-render-start");
  if (state.viewDirty) {
    state.view = state.order.filter(matches);
    list.setItems(state.view);
    state.viewDirty = false;
    $("shown").textContent = state.view.length === state.order.length ? ""
      : `${state.view.length} of ${state.order.length} shown`;
    $("empty").hidden = state.order.length > 0;
  }
  list.render();
  syncFocusable();
  $("total-speed").textContent = fmt.speed(totalSpeed()) || "0 B/s";
  if (state.countsDirty) paintCounts();
  if (state.detailsDirty) paintDetails();
  performance.measure("fd-render", "fd-render-start");
  state.renders += 1;
  if (state.renders % 5000 === 0) performance.clearMeasures("fd-render");
  performance.clearMarks("fd-render-start");
}

function matches(id) {
  const task = state.tasks.get(id);
  if (!task) return false;
  const status = state.filterStatus;
  if (status === "active" ? !ACTIVE.has(task.status) : status && task.status !== status) return false;
  if (state.filterText) {
    if (task._hay === undefined) task._hay = ((task.name || "") + "\n" + (task.url || "")).toLowerCase();
    if (!task._hay.includes(state.filterText)) return false;
  }
  return true;
}

function totalSpeed() {
  let sum = 0;
  for (const task of state.tasks.values()) {
    if (task.status === "downloading" && task.speed > 0) sum += task.speed;
  }
  return sum;
}

function paintCounts() {
  state.countsDirty = false;
  const counts = {waiting: 0, downloading: 0, success: 0, failed: 0, stopped: 0};
  for (const task of state.tasks.values()) counts[task.status] = (counts[task.status] || 0) + 1;
  const parts = [`${state.tasks.size} tasks`];
  if (counts.downloading) parts.push(`${counts.downloading} downloading`);
  if (counts.waiting) parts.push(`${counts.waiting} waiting`);
  if (counts.failed) parts.push(`${counts.failed} failed`);
  $("counts").textContent = parts.join(" · ");
}

// ------------------------------------------------------------------ rows

function el(tag, className, parent) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (parent) parent.appendChild(node);
  return node;
}

function makeRow() {
  const row = {el: el("div", "row")};
  row.el.setAttribute("role", "listitem");
  row.name = el("span", "c-name", row.el);
  row.status = el("span", "c-status", row.el);
  const bar = el("span", "c-bar", row.el);
  const track = el("span", "bar", bar);
  row.fill = el("span", "fill", track);
  row.pct = el("span", "pct", bar);
  row.speed = el("span", "c-speed", row.el);
  row.eta = el("span", "c-eta", row.el);
  row.size = el("span", "c-size", row.el);
  const act = el("span", "c-act", row.el);
  row.act = el("button", "act small", act);
  row.act.type = "button";
  row.cache = {};
  return row;
}

function setText(row, key, node, text) {
  if (row.cache[key] !== text) {
    row.cache[key] = text;
    node.textContent = text;
  }
}

function paintRow(row, id) {
  const task = state.tasks.get(id);
  if (!task) return;
  const c = row.cache;
  if (c.id !== id) {
    c.id = id;
    row.el.dataset.id = String(id);
  }
  setText(row, "name", row.name, task.name || task.url);
  setText(row, "status", row.status, fmt.STATUS_LABEL[task.status] || task.status);
  if (c.statusClass !== task.status) {
    c.statusClass = task.status;
    row.el.className = "row st-" + task.status;
  }
  const pct = fmt.percent(task);
  if (c.fill !== pct) {
    c.fill = pct;
    row.fill.style.transform = `scaleX(${pct / 100})`;
  }
  setText(row, "pct", row.pct, pct >= 100 ? "100 %" : pct.toFixed(1) + " %");
  const moving = task.status === "downloading";
  setText(row, "speed", row.speed, moving ? fmt.speed(task.speed) : "");
  setText(row, "eta", row.eta, moving ? fmt.eta(task.eta) : "");
  setText(row, "size", row.size, fmt.sizeText(task));
  const action = ACTIVE.has(task.status) ? "stop" : task.status === "success" ? "file"
    : task.status === "failed" ? "retry" : "start";
  if (c.action !== action) {
    c.action = action;
    row.act.dataset.act = action;
    row.act.textContent = {stop: "Stop", start: "Start", retry: "Retry", file: "File"}[action];
    row.act.title = {stop: "Stop", start: "Start", retry: "Retry", file: "Download the file"}[action];
  }
}

// ------------------------------------------------------------------ tasks and events

function taskChanged(id, {membership = false} = {}) {
  list.invalidate(id);
  if (membership) {
    state.countsDirty = true;
    if (state.filterStatus) state.viewDirty = true;
  }
  if (state.selected === id) state.detailsDirty = true;
  schedule();
}

function putTask(task) {
  const known = state.tasks.has(task.id);
  state.tasks.set(task.id, task);
  if (!known) {
    let at = 0;
    while (at < state.order.length && state.order[at] > task.id) at += 1;
    state.order.splice(at, 0, task.id);
  }
  state.viewDirty = true;
  taskChanged(task.id, {membership: true});
}

function removeTask(id) {
  if (!state.tasks.delete(id)) return;
  const at = state.order.indexOf(id);
  if (at >= 0) state.order.splice(at, 1);
  state.viewDirty = true;
  state.countsDirty = true;
  if (state.selected === id) closeDetails();
  schedule();
}

async function loadAll() {
  if (state.loading) return state.loading;
  state.loading = (async () => {
    const tasks = new Map();
    let current = 1;
    for (;;) {
      const page = await api.page(current, PAGE_SIZE);
      for (const task of page.list) tasks.set(task.id, task);
      if (page.list.length < PAGE_SIZE || tasks.size >= page.total) break;
      current += 1;
    }
    state.tasks = tasks;
    state.order = Array.from(tasks.keys()).sort((a, b) => b - a);
    state.viewDirty = true;
    state.countsDirty = true;
    state.loaded = true;
    if (state.selected !== null && !tasks.has(state.selected)) closeDetails();
    schedule();
  })();
  try {
    await state.loading;
  } finally {
    state.loading = null;
  }
}

async function refreshTask(id) {
  try {
    putTask(await api.task(id));
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) removeTask(id);
  }
}

function onEvent(name, data) {
  if (name === "ready") {
    if (!state.loaded) loadAll().then(applyEarly, (e) => toast(e.message));
    return;
  }
  if (!state.loaded) {
    state.early.push([name, data]);
    return;
  }
  apply(name, data);
}

function applyEarly() {
  const early = state.early;
  state.early = [];
  for (const [name, data] of early) apply(name, data);
}

function apply(name, data) {
  if (name === "resync") {
    loadAll().catch((e) => toast(e.message));
    return;
  }
  if (name === "download-create") {
    const ids = (data.ids || []).filter((i) => !state.tasks.has(i));
    if (ids.length > FETCH_ONE_MAX) loadAll().catch((e) => toast(e.message));
    else for (const id of ids) refreshTask(id);
    return;
  }
  const id = Number(data.id);
  const task = state.tasks.get(id);
  if (name === "download-delete") {
    removeTask(id);
    return;
  }
  if (!task) {
    if (name !== "download-progress" && Number.isInteger(id)) refreshTask(id);
    return;
  }
  switch (name) {
    case "download-progress":
      task.downloaded = data.downloaded;
      task.total = data.total;
      task.speed = data.speed;
      task.eta = data.eta;
      task.percent = data.percent;
      taskChanged(id);
      return;
    case "download-start":
      task.status = "downloading";
      task.error = null;
      break;
    case "download-stop":
      task.status = "stopped";
      task.speed = 0;
      break;
    case "download-success":
      task.status = "success";
      task.speed = 0;
      task.percent = 100;
      if (task.total > 0) task.downloaded = task.total;
      break;
    case "download-failed":
      task.status = "failed";
      task.speed = 0;
      task.error = data.error;
      break;
    case "download-update":
      refreshTask(id);
      return;
    default:
      return;
  }
  taskChanged(id, {membership: true});
  if (state.selected === id) {
    refreshTask(id);
    loadLog(id);
  }
}

function onStreamState(what, detail) {
  const conn = $("conn");
  if (what === "open") {
    conn.hidden = true;
  } else if (what === "down") {
    conn.textContent = "Connection lost (" + detail + "); reconnecting…";
    conn.hidden = false;
  } else if (what === "auth") {
    state.stream = null;
    tokenRefused();
  }
}

// ------------------------------------------------------------------ keyboard (roving tabindex)
// One row of the list is in the tab order (tabindex 0, with its action button): the cursor row, or the
// first row in view. Arrow keys, Home and End move the cursor (scrolling it into view) and focus it;
// Enter opens its details; Escape closes them (the document's handler) and focus stays on the row.

function firstInView() {
  if (!state.view.length) return null;
  const index = Math.ceil(list.top / list.rowHeight);
  return state.view[Math.max(0, Math.min(state.view.length - 1, index))];
}

// The row in the tab order: the cursor's while it is in the DOM, else the first row in view.
function syncFocusable() {
  const rendered = state.cursor !== null && list.pool.some((r) => !r.el.hidden && r.id === state.cursor);
  const current = rendered ? state.cursor : firstInView();
  for (const row of list.pool) {
    const on = !row.el.hidden && row.id === current;
    const tab = on ? 0 : -1;
    if (row.el.tabIndex !== tab || !row.el.hasAttribute("tabindex")) row.el.tabIndex = tab;
    if (row.act.tabIndex !== tab) row.act.tabIndex = tab;
    if (on !== ("cursor" in row.el.dataset)) {
      if (on) row.el.dataset.cursor = "";
      else delete row.el.dataset.cursor;
    }
  }
}

function rowElement(id) {
  const row = list.pool.find((r) => !r.el.hidden && r.id === id);
  return row ? row.el : null;
}

function moveCursor(index) {
  if (!state.view.length) return;
  const at = Math.max(0, Math.min(state.view.length - 1, index));
  state.cursor = state.view[at];
  const box = list.container;
  const top = at * list.rowHeight;
  if (top < box.scrollTop) box.scrollTop = top;
  else if (top + list.rowHeight > box.scrollTop + box.clientHeight) box.scrollTop = top + list.rowHeight - box.clientHeight;
  list.render(); // now, not at the next frame: the row must exist to take the focus
  syncFocusable();
  const node = rowElement(state.cursor);
  if (node) node.focus({preventScroll: true});
}

function onListKey(event) {
  const rowEl = event.target.closest(".row");
  if (!rowEl || event.altKey || event.ctrlKey || event.metaKey) return;
  const id = Number(rowEl.dataset.id);
  const at = state.view.indexOf(id);
  const page = Math.max(1, Math.floor(list.container.clientHeight / list.rowHeight) - 1);
  const moves = {ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: state.view.length - 1,
    PageDown: at + page, PageUp: at - page};
  if (event.key in moves) {
    event.preventDefault();
    moveCursor(moves[event.key]);
  } else if (event.key === "Enter" && event.target === rowEl) {
    event.preventDefault();
    state.cursor = id;
    openDetails(id);
  }
}

// ------------------------------------------------------------------ actions

async function act(action, id) {
  try {
    if (action === "stop") await api.stop(id);
    else if (action === "start" || action === "retry") await api.start(id);
    else if (action === "file") await downloadFile(id);
  } catch (e) {
    toast(e.message);
  }
}

async function downloadFile(id) {
  const link = await api.fileLink(id);
  if (!link || typeof link.url !== "string" || !link.url.startsWith("/")) {
    throw new Error("the server gave no file link");
  }
  window.location.assign(link.url);
}

async function removeWith(id, files) {
  try {
    await api.remove(id, files);
    removeTask(id);
    toast(files ? "Deleted the task and its file." : "Deleted the task.");
  } catch (e) {
    toast(e.message);
  }
}

let toastTimer = null;
function toast(message) {
  const node = $("toast");
  node.textContent = message;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { node.hidden = true; }, 6000);
}

// ------------------------------------------------------------------ details panel

function openDetails(id) {
  state.selected = id;
  $("details").hidden = false;
  document.body.classList.add("with-details");
  paintDetails();
  loadLog(id);
}

function closeDetails() {
  const details = $("details");
  const hadFocus = details.contains(document.activeElement);
  state.selected = null;
  details.hidden = true;
  document.body.classList.remove("with-details");
  if (hadFocus && state.cursor !== null) {
    const node = rowElement(state.cursor);
    if (node) node.focus({preventScroll: true});
  }
}

function paintDetails() {
  state.detailsDirty = false;
  const task = state.tasks.get(state.selected);
  if (!task) return;
  $("d-name").textContent = task.name || task.url;
  $("d-status").textContent = fmt.STATUS_LABEL[task.status] || task.status;
  const pct = fmt.percent(task);
  const bits = [pct.toFixed(1) + " %", fmt.sizeText(task)];
  if (task.status === "downloading") bits.push(fmt.speed(task.speed), fmt.eta(task.eta));
  $("d-progress").textContent = bits.filter(Boolean).join(" · ");
  $("d-type").textContent = task.type || task.kind || "";
  $("d-url").textContent = task.url;
  $("d-folder").textContent = task.folder || "(the download dir)";
  $("d-file").textContent = task.file || "";
  $("d-error").textContent = task.error || "";
  const active = ACTIVE.has(task.status);
  $("d-start").hidden = task.status !== "stopped";
  $("d-stop").hidden = !active;
  $("d-retry").hidden = task.status !== "failed";
  $("d-file-link").hidden = task.status !== "success";
  disarm();
}

async function loadLog(id) {
  try {
    const data = await api.logs(id);
    if (state.selected === id) $("d-log").textContent = data.log || "(no log lines yet)";
  } catch (e) {
    if (state.selected === id) $("d-log").textContent = "The log cannot be read: " + e.message;
  }
}

function disarm() {
  const button = $("d-delete-files");
  delete button.dataset.armed;
  button.textContent = "Delete with file";
}

// ------------------------------------------------------------------ add form

function addTasksFromForm() {
  const urls = $("add-urls").value.split(/\r?\n/).map((u) => u.trim()).filter(Boolean);
  if (!urls.length) throw new Error("Give at least one URL.");
  const name = $("add-name").value.trim();
  if (name && urls.length > 1) throw new Error("A name applies to one URL; leave it empty for several.");
  const headers = $("add-headers").value.split(/\r?\n/).map((h) => h.trim()).filter(Boolean);
  const base = {};
  const type = $("add-type").value;
  if (type) base.type = type;
  const folder = $("add-folder").value.trim();
  if (folder) base.folder = folder;
  if (headers.length) base.headers = headers;
  const quality = $("add-quality").value;
  if (quality) base.quality = quality;
  if ($("add-audio").checked) base.audioOnly = true;
  base.priority = $("add-priority").value;
  return urls.map((url) => Object.assign({url}, base, name ? {name} : {}));
}

function showDetected() {
  const urls = $("add-urls").value.split(/\r?\n/).map((u) => u.trim()).filter(Boolean);
  const kinds = new Map();
  for (const url of urls) {
    const kind = fmt.guessType(url) || "not an http(s) URL";
    kinds.set(kind, (kinds.get(kind) || 0) + 1);
  }
  $("add-detected").textContent = !urls.length || $("add-type").value ? ""
    : "Detected: " + Array.from(kinds, ([k, n]) => (urls.length > 1 ? `${n}× ${k}` : k)).join(", ");
}

// ------------------------------------------------------------------ themes

async function setupThemes() {
  const select = $("theme");
  let data = {default: "fetchdeck-dark", themes: []};
  try {
    data = await (await fetch("themes.json", {cache: "no-store"})).json();
  } catch (e) { /* the generated stylesheet still has the default */ }
  const system = el("option", "", select);
  system.value = "system";
  system.textContent = "System";
  system.title = "Light or dark, as the system prefers";
  for (const theme of data.themes) {
    const option = el("option", "", select);
    option.value = theme.name;
    const label = theme.name.replace(/^fetchdeck-/, "");
    option.textContent = label.charAt(0).toUpperCase() + label.slice(1);
  }
  const names = new Set(data.themes.map((t) => t.name).concat(["system"]));
  const saved = localStorage.getItem(THEME_KEY);
  applyTheme(saved && names.has(saved) ? saved : data.default);
  select.addEventListener("change", () => {
    localStorage.setItem(THEME_KEY, select.value);
    applyTheme(select.value);
  });
}

function applyTheme(name) {
  document.documentElement.dataset.theme = name;
  $("theme").value = name;
  if (graph) graph.themeChanged();
}

// ------------------------------------------------------------------ login and start

// The server refused the kept token while the page was running (the token changed or was revoked, the
// server restarted with another one): stop the stream (no reconnecting with a token that cannot work),
// forget the token and ask for the new one. Called once per refusal, by the stream or by any API call.
function tokenRefused() {
  if ($("main").hidden) return; // the login form is showing already (or the page is starting)
  auth.token = "";
  closeDetails();
  if ($("add").open) $("add").close();
  showLogin("The server refused the token (it was changed or revoked); log in with the new one.");
}

function showLogin(message) {
  if (state.stream) state.stream.stop();
  state.stream = null;
  $("conn").hidden = true;
  $("main").hidden = true;
  $("login").hidden = false;
  $("login-message").textContent = message || "";
  $("login-token").focus();
}

async function login(event) {
  event.preventDefault();
  const token = $("login-token").value.trim();
  const message = $("login-message");
  message.textContent = "";
  try {
    await call("GET", "/api/downloads?pageSize=1", undefined, token);
  } catch (e) {
    message.textContent = e.status === 401
      ? "Wrong token: the server refused it (401). Use the token fetchdeck was started with "
        + "(--token or [server] token)."
      : "Cannot log in: " + e.message;
    return;
  }
  auth.token = token;
  $("login-token").value = "";
  $("login").hidden = true;
  startApp();
}

function startApp() {
  $("main").hidden = false;
  $("logout").hidden = !auth.token;
  list.measure();
  schedule();
  if (!state.stream) {
    state.loaded = false;
    state.stream = new EventStream("/api/events", (extra) => auth.headers(extra), onEvent, onStreamState);
    state.stream.start();
  }
}

async function boot() {
  list = new VirtualList($("list"), $("spacer"), makeRow, paintRow);
  graph = new SpeedGraph($("graph"), GRAPH_SECONDS);
  await setupThemes();
  graph.draw();
  setInterval(() => graph.push(totalSpeed()), 1000);
  wire();
  try {
    await call("GET", "/api/downloads?pageSize=1");
  } catch (e) {
    if (e.status === 401) {
      showLogin(auth.token ? "The saved token was refused by the server; log in again." : "");
      return;
    }
    toast(e.message);
  }
  startApp();
}

function wire() {
  auth.onRefused = tokenRefused;
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", () => {
    auth.token = "";
    window.location.reload();
  });
  $("list").addEventListener("scroll", schedule, {passive: true});
  window.addEventListener("resize", () => { list.measure(); graph.draw(); schedule(); });
  $("list").addEventListener("keydown", onListKey);
  $("list").addEventListener("focusin", (event) => {
    const rowEl = event.target.closest(".row");
    if (rowEl && state.cursor !== Number(rowEl.dataset.id)) {
      state.cursor = Number(rowEl.dataset.id);
      schedule();
    }
  });
  $("list").addEventListener("click", (event) => {
    const rowEl = event.target.closest(".row");
    if (!rowEl) return;
    const id = Number(rowEl.dataset.id);
    state.cursor = id;
    schedule();
    const button = event.target.closest("button.act");
    if (button) act(button.dataset.act, id);
    else openDetails(id);
  });
  $("filter-text").addEventListener("input", (event) => {
    state.filterText = event.target.value.trim().toLowerCase();
    state.viewDirty = true;
    schedule();
  });
  $("filter-status").addEventListener("change", (event) => {
    state.filterStatus = event.target.value;
    state.viewDirty = true;
    schedule();
  });
  $("d-close").addEventListener("click", closeDetails);
  $("d-start").addEventListener("click", () => act("start", state.selected));
  $("d-stop").addEventListener("click", () => act("stop", state.selected));
  $("d-retry").addEventListener("click", () => act("retry", state.selected));
  $("d-file-link").addEventListener("click", () => act("file", state.selected));
  $("d-delete").addEventListener("click", () => removeWith(state.selected, false));
  $("d-delete-files").addEventListener("click", (event) => {
    const button = event.currentTarget;
    if (button.dataset.armed) {
      removeWith(state.selected, true);
      return;
    }
    button.dataset.armed = "1";
    button.textContent = "Click again: delete the file too";
  });
  $("d-log-refresh").addEventListener("click", () => loadLog(state.selected));
  const dialog = $("add");
  $("add-open").addEventListener("click", () => {
    $("add-message").textContent = "";
    dialog.showModal();
    $("add-urls").focus();
  });
  $("add-cancel").addEventListener("click", () => dialog.close());
  $("add-urls").addEventListener("input", showDetected);
  $("add-type").addEventListener("change", showDetected);
  $("add-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = $("add-message");
    message.textContent = "";
    let tasks;
    try {
      tasks = addTasksFromForm();
    } catch (e) {
      message.textContent = e.message;
      return;
    }
    try {
      const created = await api.create(tasks, $("add-start").checked);
      for (const task of created) putTask(task);
      dialog.close();
      $("add-form").reset();
      $("add-detected").textContent = "";
      toast(created.length === 1 ? "Added 1 task." : `Added ${created.length} tasks.`);
    } catch (e) {
      message.textContent = e.message;
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.selected !== null && !dialog.open) closeDetails();
  });
}

boot();
