// A print button where a page offers one (`data-print`): shown only with JavaScript,
// since without it the browser's own print command does the same.
(function () {
  "use strict";
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });
})();
// Live status without a full reload: the page is fetched again every few seconds and
// every element marked `data-live` is replaced from that one answer, all together, so
// that no part of the page shows an older state than another. A live region itself
// (`role="status"`) stays in place and only its content changes, so screen readers
// announce the change. Without JavaScript the page works the same and says so: texts
// marked `data-script-only` (e.g. "the status updates by itself") are shown only here.
(function () {
  "use strict";
  var regions = document.querySelectorAll("[data-live]");
  if (!regions.length || !window.fetch || !window.DOMParser) return;
  document.querySelectorAll("[data-script-only]").forEach(function (el) {
    el.hidden = false;
  });
  var every = 3000;
  // Where the keyboard focus is, as a selector that finds the same control in the new
  // content (live regions hold buttons, never text a person is typing).
  function focusKey(el) {
    if (!el || el === document.body) return null;
    if (el.id) return "#" + CSS.escape(el.id);
    var form = el.closest("form");
    if (form && form.getAttribute("action")) {
      return 'form[action="' + CSS.escape(form.getAttribute("action")) + '"] ' + el.tagName.toLowerCase();
    }
    return null;
  }
  function refresh() {
    if (document.hidden) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Live": "1" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var active = document.activeElement;
        var key = null;
        regions.forEach(function (el) {
          if (el.contains(active)) key = focusKey(active);
        });
        regions.forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (fresh && fresh.innerHTML !== el.innerHTML) {
            el.innerHTML = fresh.innerHTML;
          }
        });
        if (key && !document.body.contains(active)) {
          var again = document.querySelector(key);
          if (again) again.focus();
        }
      })
      .catch(function () {});
  }
  window.setInterval(refresh, every);
})();
