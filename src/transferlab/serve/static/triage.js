// Keyboard shortcuts for the triage pages (the pages work without this file).
// Queue: j/k move, Enter opens.  Item: j/k next/previous item, v/s/n judge (vulnerability /
// security-not-vulnerability / not-security) with the comment typed so far.
(function () {
  "use strict";
  function typing(e) {
    var t = e.target && e.target.tagName;
    return t === "INPUT" || t === "TEXTAREA" || t === "SELECT";
  }
  document.addEventListener("keydown", function (e) {
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-href]"));
    if (rows.length) {
      var i = rows.findIndex(function (r) { return r.classList.contains("current"); });
      if (e.key === "j" || e.key === "k") {
        if (i >= 0) rows[i].classList.remove("current");
        i = e.key === "j" ? Math.min(rows.length - 1, i + 1) : Math.max(0, i - 1);
        rows[i].classList.add("current");
        rows[i].scrollIntoView({ block: "nearest" });
      } else if (e.key === "Enter" && i >= 0) {
        window.location.assign(rows[i].getAttribute("data-href"));
      }
      return;
    }
    var nav = { j: "next", k: "prev" }[e.key];
    if (nav) {
      var a = document.querySelector("a[rel=" + nav + "]");
      if (a) window.location.assign(a.getAttribute("href"));
      return;
    }
    var verdict = { v: "vulnerability", s: "security-not-vuln", n: "not-security" }[e.key];
    if (verdict) {
      var b = document.querySelector("button[name=verdict][value=" + verdict + "]");
      if (b) { e.preventDefault(); b.click(); }
    }
  });
})();
