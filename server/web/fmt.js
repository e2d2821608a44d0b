// Formatting of sizes, speeds, times and statuses for the page (no DOM here).

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function bytes(n) {
  if (n === null || n === undefined || !isFinite(n)) return "";
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) { v /= 1024; i += 1; }
  return (i === 0 ? String(Math.round(v)) : v.toFixed(v < 10 ? 1 : 0)) + " " + UNITS[i];
}

export function speed(n) {
  return n > 0 ? bytes(n) + "/s" : "";
}

export function eta(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds) || seconds < 0) return "";
  const s = Math.round(seconds);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
  const h = Math.floor(s / 3600);
  if (h < 100) return h + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
  return Math.floor(h / 24) + "d";
}

export const STATUS_LABEL = {
  waiting: "Waiting", downloading: "Downloading", success: "Finished", failed: "Failed", stopped: "Stopped",
};

export function percent(task) {
  if (task.status === "success") return 100;
  if (typeof task.percent === "number" && task.percent > 0) return Math.min(100, task.percent);
  if (task.total > 0) return Math.min(100, (100 * task.downloaded) / task.total);
  return 0;
}

export function sizeText(task) {
  if (task.total > 0) {
    return task.status === "success" ? bytes(task.total) : bytes(task.downloaded) + " / " + bytes(task.total);
  }
  return task.downloaded > 0 ? bytes(task.downloaded) : "";
}

// What the server would detect (core/detect.py guess_kind): shown in the add form as a hint only.
const VIDEO_HOSTS = ["youtube.com", "youtu.be", "bilibili.com", "b23.tv", "vimeo.com", "twitch.tv",
  "dailymotion.com", "tiktok.com", "twitter.com", "x.com", "instagram.com", "facebook.com", "soundcloud.com",
  "nicovideo.jp", "douyin.com", "ixigua.com"];

export function guessType(url) {
  let parts;
  try { parts = new URL(url); } catch (e) { return null; }
  if (parts.protocol !== "http:" && parts.protocol !== "https:") return null;
  const path = parts.pathname.toLowerCase();
  if (path.endsWith(".m3u8") || path.endsWith(".m3u")) return "HLS (m3u8)";
  if (path.endsWith(".mpd")) return "DASH (mpd)";
  const host = parts.hostname.toLowerCase();
  if (VIDEO_HOSTS.some((h) => host === h || host.endsWith("." + h))) return "video site (yt-dlp)";
  return "direct (HTTP)";
}
