// Live status without a full reload: every element marked `data-live` is fetched again
// from the same page every few seconds and replaced in place. Without JavaScript the
// page works the same; it only needs a reload to show news.
(function () {
  "use strict";
  var regions = document.querySelectorAll("[data-live]");
  if (!regions.length || !window.fetch || !window.DOMParser) return;
  var every = 3000;
  function refresh() {
    if (document.hidden) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Live": "1" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        regions.forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (fresh && fresh.innerHTML !== el.innerHTML && !el.contains(document.activeElement)) {
            el.innerHTML = fresh.innerHTML;
          }
        });
      })
      .catch(function () {});
  }
  window.setInterval(refresh, every);
})();
