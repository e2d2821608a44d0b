// The native API from the page: the token as `Authorization: Bearer`, answers in the
// {success, code, message, data} envelope. The token lives in localStorage, never in a URL.

const TOKEN_KEY = "fetchdeck.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const auth = {
  get token() { return localStorage.getItem(TOKEN_KEY) || ""; },
  set token(value) {
    if (value) localStorage.setItem(TOKEN_KEY, value);
    else localStorage.removeItem(TOKEN_KEY);
  },
  onRefused: null, // called when the server answers 401 to a call made with the kept token
  headers(extra) {
    const headers = Object.assign({Accept: "application/json"}, extra || {});
    const token = this.token;
    if (token) headers.Authorization = "Bearer " + token;
    return headers;
  },
};

export async function call(method, path, body, token) {
  const headers = auth.headers(body === undefined ? {} : {"Content-Type": "application/json"});
  if (token !== undefined) headers.Authorization = "Bearer " + token;
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store", credentials: "same-origin",
    });
  } catch (e) {
    throw new ApiError(0, 0, "fetchdeck cannot be reached (" + e.message + ")");
  }
  let envelope = null;
  try { envelope = await response.json(); } catch (e) { envelope = null; }
  if (!response.ok || !envelope || envelope.success !== true) {
    const message = envelope && typeof envelope.message === "string" ? envelope.message
      : "HTTP " + response.status + " " + response.statusText;
    if (response.status === 401 && token === undefined && auth.onRefused) auth.onRefused();
    throw new ApiError(response.status, envelope ? envelope.code : 0, message);
  }
  return envelope.data;
}

export const api = {
  page: (current, size) => call("GET", `/api/downloads?current=${current}&pageSize=${size}`),
  task: (id) => call("GET", `/api/downloads/${id}`),
  logs: (id) => call("GET", `/api/downloads/${id}/logs`),
  create: (tasks, start) => call("POST", "/api/downloads", {tasks, startDownload: start}),
  start: (id) => call("POST", `/api/downloads/${id}/start`),
  stop: (id) => call("POST", `/api/downloads/${id}/stop`),
  remove: (id, files) => call("DELETE", `/api/downloads/${id}?deleteFile=${files ? "true" : "false"}`),
  // Contract with the file downloads side (docs/web.md): a signed, expiring URL for a finished file.
  fileLink: (id) => call("POST", `/api/downloads/${id}/file-link`),
};
