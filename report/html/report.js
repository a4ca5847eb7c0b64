// Sorting and filtering of the hosts table. The view lives in the URL fragment
// (#q=...&grade=ofm-9.1:fail&sort=-g1&open=198.18.0.12), so a link opens the same view, with one host's details open,
// and the chart's bars are plain links. The script only moves, hides and labels the
// elements the page already has: it never writes markup.
(function () {
  "use strict";
  var table = document.getElementById("host-table");
  if (!table) {
    return; // a grouped report: no host rows to sort or filter
  }
  var query = document.getElementById("q");
  var grade = document.getElementById("grade");
  var shown = document.getElementById("shown");
  var none = document.getElementById("none");
  var expand = document.getElementById("expand");
  var hosts = Array.prototype.slice.call(table.tBodies);
  var headers = Array.prototype.slice.call(table.tHead.querySelectorAll("th[data-key]"));
  var text = new Map();
  hosts.forEach(function (h) { text.set(h, h.textContent.toLowerCase()); });
  var view = { q: "", grade: "", sort: "address", open: "" };

  function readHash() {
    var p = new URLSearchParams(location.hash.replace(/^#/, ""));
    view.q = p.get("q") || "";
    view.grade = p.get("grade") || "";
    view.sort = p.get("sort") || "address";
    view.open = p.get("open") || "";
  }

  function writeHash() {
    var p = new URLSearchParams();
    if (view.q) { p.set("q", view.q); }
    if (view.grade) { p.set("grade", view.grade); }
    if (view.sort !== "address") { p.set("sort", view.sort); }
    if (view.open) { p.set("open", view.open); }
    history.replaceState(null, "", "#" + p.toString());
  }

  function sortValue(h, key) {
    var v = h.getAttribute("data-sort-" + key) || "";
    return /^g[0-9]+$/.test(key) ? Number(v) : v.toLowerCase();
  }

  function compare(key, dir) {
    return function (a, b) {
      var x = sortValue(a, key), y = sortValue(b, key);
      var c = x === y ? 0 : (x > y ? 1 : -1);
      if (c === 0) {
        var s = a.getAttribute("data-sort-address"), t = b.getAttribute("data-sort-address");
        return s === t ? 0 : (s > t ? 1 : -1);
      }
      return c * dir;
    };
  }

  function apply() {
    var desc = view.sort.charAt(0) === "-";
    var key = desc ? view.sort.slice(1) : view.sort;
    hosts.slice().sort(compare(key, desc ? -1 : 1)).forEach(function (h) { table.appendChild(h); });
    headers.forEach(function (th) {
      if (th.getAttribute("data-key") === key) {
        th.setAttribute("aria-sort", desc ? "descending" : "ascending");
      } else {
        th.removeAttribute("aria-sort");
      }
    });
    var terms = view.q.toLowerCase().split(/\s+/).filter(Boolean);
    var visible = 0;
    hosts.forEach(function (h) {
      var t = text.get(h);
      var ok = terms.every(function (term) { return t.indexOf(term) !== -1; });
      if (ok && view.grade) {
        ok = h.getAttribute("data-grades").split(" ").indexOf(view.grade) !== -1;
      }
      h.hidden = !ok;
      if (ok) { visible++; }
      if (view.open && h.getAttribute("data-address") === view.open) {
        h.querySelector("details").open = true;
      }
    });
    query.value = view.q;
    grade.value = view.grade;
    shown.textContent = visible === hosts.length ? hosts.length + " hosts" : visible + " of " + hosts.length + " hosts";
    none.hidden = visible !== 0;
    table.setAttribute("data-ready", "true");
  }

  headers.forEach(function (th) {
    th.querySelector("button").addEventListener("click", function () {
      var key = th.getAttribute("data-key");
      var current = view.sort.replace(/^-/, "");
      if (current === key) {
        view.sort = view.sort.charAt(0) === "-" ? key : "-" + key;
      } else {
        // Grades sort worst first; everything else ascending.
        view.sort = /^g[0-9]+$/.test(key) ? "-" + key : key;
      }
      writeHash();
      apply();
    });
  });
  query.addEventListener("input", function () { view.q = query.value; writeHash(); apply(); });
  grade.addEventListener("change", function () { view.grade = grade.value; writeHash(); apply(); });
  expand.addEventListener("click", function () {
    var details = Array.prototype.slice.call(table.querySelectorAll("details"));
    var open = !details.every(function (d) { return d.open; });
    details.forEach(function (d) { d.open = open; });
    expand.textContent = open ? "Collapse all" : "Expand all";
  });
  window.addEventListener("hashchange", function () { readHash(); apply(); });
  readHash();
  apply();
}());
