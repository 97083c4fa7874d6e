// Alerts page: create and end silences through the JSON API with the token the user types.
// The token is kept in this tab only (sessionStorage), sent as "Authorization: Bearer <token>".
(function () {
  "use strict";
  var script = document.currentScript;
  var base = script.getAttribute("data-silences-url");
  var form = document.getElementById("silence-form");
  var message = document.getElementById("silence-message");
  var tokenInput = document.getElementById("api-token");
  if (!form) { return; }
  try { tokenInput.value = sessionStorage.getItem("driftline.token") || ""; } catch (e) { /* storage off */ }

  function show(text, isError) {
    message.textContent = text;
    message.className = isError ? "error" : "ok";
  }

  function headers() {
    var token = tokenInput.value.trim();
    var h = { "Content-Type": "application/json", "Accept": "application/json" };
    if (token) { h.Authorization = "Bearer " + token; }
    try { sessionStorage.setItem("driftline.token", token); } catch (e) { /* storage off */ }
    return h;
  }

  function call(method, url, body) {
    return fetch(url, { method: method, headers: headers(), body: body ? JSON.stringify(body) : undefined,
                        credentials: "same-origin" })
      .then(function (resp) {
        return resp.json().catch(function () { return {}; }).then(function (doc) {
          if (!resp.ok) {
            var text = (doc && doc.error) || ("HTTP " + resp.status);
            if (doc && typeof doc.detail === "string") { text += " — " + doc.detail; }
            throw new Error(text);
          }
          return doc;
        });
      });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var hours = parseFloat(document.getElementById("silence-hours").value);
    var matchers = [{ name: "model", value: document.getElementById("silence-model").value, isRegex: false, isEqual: true }];
    var alertname = document.getElementById("silence-alertname").value;
    if (alertname) { matchers.push({ name: "alertname", value: alertname, isRegex: false, isEqual: true }); }
    var body = {
      matchers: matchers,
      endsAt: new Date(Date.now() + hours * 3600 * 1000).toISOString(),
      createdBy: document.getElementById("silence-by").value,
      comment: document.getElementById("silence-comment").value
    };
    show("Creating…", false);
    call("POST", base, body).then(function (doc) {
      show("Silence " + doc.silenceID + " created.", false);
      window.setTimeout(function () { window.location.reload(); }, 400);
    }).catch(function (err) { show("Not created: " + err.message, true); });
  });

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target.classList.contains("end-silence")) {
      show("Ending…", false);
      call("DELETE", base + "/" + encodeURIComponent(target.getAttribute("data-id"))).then(function () {
        show("Silence ended.", false);
        window.setTimeout(function () { window.location.reload(); }, 400);
      }).catch(function (err) { show("Not ended: " + err.message, true); });
    } else if (target.classList.contains("prefill")) {
      document.getElementById("silence-model").value = target.getAttribute("data-model");
      document.getElementById("silence-alertname").value = target.getAttribute("data-alertname");
      document.getElementById("silence-comment").focus();
    }
  });
}());
