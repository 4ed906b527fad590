// The extension's background: enables its button only on booking pages, and records an
// attempt when the popup asks. Chromium loads it as a service worker (importScripts
// below); Firefox as an event page (the manifest's "scripts" list loads the others).
"use strict";

if (typeof importScripts === "function" && typeof PLATFORM_HOSTS === "undefined") {
  importScripts("hosts.js", "zip.js", "capture.js");
}

async function refreshAction(tabId, url) {
  var settings = await loadSettings();
  if (isBookingUrl(url || "", settings.extraHosts)) {
    await chrome.action.enable(tabId);
  } else {
    await chrome.action.disable(tabId);
  }
}

chrome.tabs.onUpdated.addListener(function (tabId, change, tab) {
  if (change.url || change.status === "complete") refreshAction(tabId, tab.url).catch(function () {});
});

chrome.tabs.onActivated.addListener(function (info) {
  chrome.tabs.get(info.tabId).then(function (tab) { return refreshAction(tab.id, tab.url); })
    .catch(function () {});
});

chrome.runtime.onMessage.addListener(function (message, sender, reply) {
  if (!message || message.type !== "record" || typeof message.tabId !== "number") return false;
  recordAttempt(message.tabId).then(
    function (result) { reply({ ok: true, result: result }); },
    function (error) { reply({ ok: false, error: String(error && error.message || error) }); }
  );
  return true; // the reply comes later
});
