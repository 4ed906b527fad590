"use strict";

function hostsFrom(text) {
  return text.split(/\s+/).map(function (h) { return h.trim().toLowerCase(); })
    .filter(function (h) { return /^[a-z0-9.-]+(:\d+)?$/.test(h); });
}

async function load() {
  var s = await chrome.storage.local.get(["server", "token", "extraHosts"]);
  document.getElementById("serveur").value = s.server || "";
  document.getElementById("jeton").value = s.token || "";
  document.getElementById("sites").value = (s.extraHosts || []).join("\n");
  var list = document.getElementById("connus");
  PLATFORM_HOSTS.forEach(function (h) {
    var li = document.createElement("li");
    li.textContent = h;
    list.appendChild(li);
  });
}

document.getElementById("reglages").addEventListener("submit", async function (event) {
  event.preventDefault();
  var server = document.getElementById("serveur").value.trim();
  var extra = hostsFrom(document.getElementById("sites").value);
  // The browser asks the person to allow the added sites (and the server).
  var origins = extra.map(function (h) { return "*://" + h.split(":")[0] + "/*"; });
  if (server) origins.push(new URL(server).origin + "/*");
  var granted = origins.length === 0 || await chrome.permissions.request({ origins: origins });
  await chrome.storage.local.set({
    server: server,
    token: document.getElementById("jeton").value.trim(),
    extraHosts: granted ? extra : [],
  });
  document.getElementById("etat").textContent = granted
    ? "Réglages enregistrés."
    : "Réglages enregistrés, sans les sites ajoutés (autorisation refusée).";
});

load();
