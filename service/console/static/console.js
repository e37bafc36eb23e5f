// Refreshes the parts of a console page that name a fragment URL (data-refresh-url), every
// data-refresh-seconds; the server renders and escapes the fragment, the page only swaps it in.
"use strict";

(function () {
  function refresh(container) {
    var url = container.getAttribute("data-refresh-url");
    var seconds = Number(container.getAttribute("data-refresh-seconds")) || 5;
    function tick() {
      if (document.hidden) {
        return schedule();  // no polling from a tab nobody looks at
      }
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (response.redirected || !response.ok) {
            // signed out (the session ended, the key was revoked): show the sign-in page the server chose, with
            // its message, and come back to this page, not to the fragment, after signing in again
            var target = new URL(response.url, window.location.href);
            if (response.redirected && target.pathname === "/console/sign-in") {
              target.searchParams.set("next", window.location.pathname + window.location.search);
              window.location.assign(target.toString());
            } else {
              window.location.reload();
            }
            return null;
          }
          return response.text();
        })
        .then(function (html) {
          if (html === null) {
            return;
          }
          var parsed = new DOMParser().parseFromString(html, "text/html");
          container.replaceChildren.apply(container, Array.from(parsed.body.childNodes));
          schedule();
        })
        .catch(function () {
          schedule();  // the server restarting: try again at the next tick
        });
    }
    function schedule() {
      window.setTimeout(tick, seconds * 1000);
    }
    schedule();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh-url]").forEach(refresh);
  });
})();
