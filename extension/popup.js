"use strict";

var OUTCOMES = {
  available: "des créneaux étaient proposés",
  no_slot: "aucun créneau (message de la plateforme reconnu)",
  procedure_missing: "la démarche n'était pas proposée",
  form_open: "le formulaire était ouvert",
  blocked: "page de blocage ou code de sécurité",
  error: "erreur du site",
  unrecognized: "page non reconnue : une personne la regardera",
};

function show(text) {
  document.getElementById("etat").textContent = text;
}

document.getElementById("enregistrer").addEventListener("click", async function () {
  var button = this;
  button.disabled = true;
  show("Enregistrement…");
  try {
    var tabs = await chrome.tabs.query({ active: true, currentWindow: true });
    var reply = await chrome.runtime.sendMessage({ type: "record", tabId: tabs[0].id });
    if (!reply || !reply.ok) throw new Error(reply ? reply.error : "pas de réponse");
    var result = reply.result;
    if (result.mode === "server") {
      var a = result.answer;
      show("Enregistrée par le serveur (n° " + a.id + ", reçue le " +
        new Date(a.received_at).toLocaleString("fr-FR") + ") : " + (OUTCOMES[a.outcome] || a.outcome) + ".");
    } else {
      show("Enregistrée sur cet ordinateur : " + result.saved.filename + " (sha256 " +
        result.saved.sha256.slice(0, 16) + "…).");
    }
  } catch (error) {
    show("Échec : " + (error && error.message ? error.message : error));
  } finally {
    button.disabled = false;
  }
});
