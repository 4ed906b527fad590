// Recording one attempt: the page's HTML, its address, the time and a screenshot of the
// visible tab. Then either send it to the person's observatoire server (with their
// personal token) or, without a server, save it as a local bundle (a zip with a
// manifest of sha256 hashes) the person can hand to a lawyer.
//
// The extension never acts on the page: the only code it runs in the page reads
// `document.documentElement.outerHTML`. It never clicks, types, submits or navigates:
// the person does everything, the extension only keeps a copy of what they saw.
"use strict";

var EXTENSION_VERSION = chrome.runtime.getManifest().version;

// Settings: {server: "https://…", token: "…", extraHosts: ["host[:port]", …]}
async function loadSettings() {
  var stored = await chrome.storage.local.get(["server", "token", "extraHosts"]);
  return {
    server: (stored.server || "").trim().replace(/\/+$/, ""),
    token: (stored.token || "").trim(),
    extraHosts: Array.isArray(stored.extraHosts) ? stored.extraHosts : [],
  };
}

// Whether `url` is a page of a booking platform: a host from the platform registry
// (hosts.js) or one the person added in the options.
function isBookingUrl(url, extraHosts) {
  var parsed;
  try {
    parsed = new URL(url);
  } catch (e) {
    return false;
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") return false;
  var extra = (extraHosts || []).map(function (h) { return String(h).toLowerCase(); });
  var host = parsed.hostname.toLowerCase();
  if (parsed.protocol === "https:" && PLATFORM_HOSTS.indexOf(host) >= 0) return true;
  return extra.indexOf(host) >= 0 || extra.indexOf(parsed.host.toLowerCase()) >= 0;
}

// Runs inside the page: reads, never writes.
function readPage() {
  var doctype = document.doctype ? "<!DOCTYPE " + document.doctype.name + ">\n" : "";
  return { html: doctype + document.documentElement.outerHTML, url: location.href };
}

function base64ToBytes(b64) {
  var binary = atob(b64);
  var bytes = new Uint8Array(binary.length);
  for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function bytesToBase64(bytes) {
  var s = "";
  for (var i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
  }
  return btoa(s);
}

async function sha256Hex(bytes) {
  var digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.prototype.map.call(digest, function (b) {
    return b.toString(16).padStart(2, "0");
  }).join("");
}

// The capture of tab `tabId` (which must be the active tab of its window: the
// screenshot is of the visible tab).
async function collect(tabId) {
  var settings = await loadSettings();
  var tab = await chrome.tabs.get(tabId);
  if (!isBookingUrl(tab.url || "", settings.extraHosts)) {
    throw new Error("Cette page n'est pas une page de prise de rendez-vous connue.");
  }
  var results = await chrome.scripting.executeScript({ target: { tabId: tabId }, func: readPage });
  var page = results[0].result;
  var dataUrl = await captureTab(tab.windowId);
  return {
    html: new TextEncoder().encode(page.html),
    url: page.url,
    time: new Date().toISOString(),
    screenshot: base64ToBytes(dataUrl.split(",", 2)[1]),
    userAgent: navigator.userAgent,
  };
}

// Chromium allows about two screenshots of a tab per second: a person who presses the
// button twice in a row gets a quota error the first time round, so wait and try again.
async function captureTab(windowId) {
  for (var attempt = 0; ; attempt++) {
    try {
      return await chrome.tabs.captureVisibleTab(windowId, { format: "png" });
    } catch (error) {
      var quota = String(error && error.message).indexOf("MAX_CAPTURE_VISIBLE_TAB") >= 0;
      if (!quota || attempt >= 4) throw error;
      await new Promise(function (resolve) { setTimeout(resolve, 600); });
    }
  }
}

async function sendCapture(capture, settings) {
  var form = new FormData();
  form.append("url", capture.url);
  form.append("client_time", capture.time);
  form.append("extension_version", EXTENSION_VERSION);
  form.append("html", new Blob([capture.html], { type: "text/html;charset=utf-8" }), "page.html");
  form.append("screenshot", new Blob([capture.screenshot], { type: "image/png" }), "capture.png");
  var response = await fetch(settings.server + "/api/captures", {
    method: "POST",
    headers: { Authorization: "Bearer " + settings.token },
    body: form,
    credentials: "omit",
  });
  var body = await response.json().catch(function () { return {}; });
  if (!response.ok) {
    throw new Error(body.error || "Le serveur a refusé la capture (" + response.status + ").");
  }
  return body;
}

// The local bundle: page.html, capture.png, capture.json and manifest.json (sha256 and
// size of each other file), zipped.
async function buildBundle(capture) {
  var encoder = new TextEncoder();
  var info = {
    url: capture.url,
    time: capture.time,
    user_agent: capture.userAgent,
    extension_version: EXTENSION_VERSION,
    note: "Heure donnée par l'horloge de cet ordinateur (non vérifiée par un serveur).",
  };
  var files = [
    { name: "page.html", data: capture.html },
    { name: "capture.png", data: capture.screenshot },
    { name: "capture.json", data: encoder.encode(JSON.stringify(info, null, 2)) },
  ];
  var manifest = { created: capture.time, url: capture.url, files: [] };
  for (var i = 0; i < files.length; i++) {
    manifest.files.push({
      name: files[i].name,
      sha256: await sha256Hex(files[i].data),
      size: files[i].data.length,
    });
  }
  files.push({ name: "manifest.json", data: encoder.encode(JSON.stringify(manifest, null, 2)) });
  return makeZip(files, new Date(capture.time));
}

function bundleName(time) {
  return "tentative-" + time.replace(/[:.]/g, "-").replace("T", "_").slice(0, 19) + ".zip";
}

async function saveBundle(capture) {
  var zip = await buildBundle(capture);
  var url;
  if (typeof URL.createObjectURL === "function") {
    url = URL.createObjectURL(new Blob([zip], { type: "application/zip" }));
  } else {
    url = "data:application/zip;base64," + bytesToBase64(zip);
  }
  var filename = "observatoire/" + bundleName(capture.time);
  var id = await chrome.downloads.download({ url: url, filename: filename, saveAs: false });
  return { filename: filename, downloadId: id, sha256: await sha256Hex(zip) };
}

// The whole recording. Returns what the popup shows.
async function recordAttempt(tabId) {
  var settings = await loadSettings();
  var capture = await collect(tabId);
  if (settings.server && settings.token) {
    var answer = await sendCapture(capture, settings);
    return { mode: "server", answer: answer };
  }
  var saved = await saveBundle(capture);
  return { mode: "bundle", saved: saved };
}
