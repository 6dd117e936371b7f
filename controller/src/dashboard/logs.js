// Skiff's dashboard: follows an app's log as it happens (server-sent events). Lines are
// added as text, never as markup.
(function () {
  var log = document.getElementById("log");
  if (!log || !window.EventSource) return;
  var status = document.getElementById("log-status");
  var source = new EventSource(log.getAttribute("data-stream"));
  // Each connection starts with the recent lines again: they replace what is shown.
  var fresh = true;
  source.onopen = function () {
    fresh = true;
    if (status) status.textContent = "live";
  };
  source.onerror = function () {
    if (status) status.textContent = "reconnecting…";
  };
  source.onmessage = function (event) {
    if (fresh) {
      log.textContent = "";
      fresh = false;
    }
    var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.appendChild(document.createTextNode(event.data + "\n"));
    while (log.childNodes.length > 2000) log.removeChild(log.firstChild);
    if (atBottom) log.scrollTop = log.scrollHeight;
  };
})();
