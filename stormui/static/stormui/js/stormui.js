// Storm UI: sortable tables. Pages work without this script; it only adds sorting.
"use strict";

(function () {
  // a cell's sort key: its data-sort value when present, else its text
  function cellKey(row, index) {
    var cell = row.cells[index];
    if (!cell) return "";
    var v = cell.getAttribute("data-sort");
    return (v !== null ? v : cell.textContent).trim();
  }

  function asNumber(s) {
    if (s === "") return null;
    var n = Number(s.replace(/,/g, ""));
    return isFinite(n) ? n : null;
  }

  function compare(a, b) {
    var na = asNumber(a);
    var nb = asNumber(b);
    if (na !== null && nb !== null) return na - nb;
    // empty values sort last whichever way
    if (a === "" || b === "") return a === "" ? (b === "" ? 0 : 1) : -1;
    return a.localeCompare(b, undefined, { numeric: true, sensitivity: "base" });
  }

  // sort by the column of `th`: the other way from its current order, unless `descending`
  // says which (a live page restores the user's order after an update)
  function sortBy(table, th, descending) {
    var index = th.cellIndex;
    if (descending === undefined) descending = th.getAttribute("aria-sort") === "ascending";
    var ths = table.tHead.rows[0].cells;
    for (var i = 0; i < ths.length; i++) ths[i].removeAttribute("aria-sort");
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    Array.prototype.forEach.call(table.tBodies, function (body) {
      var rows = Array.prototype.slice.call(body.rows);
      var keyed = rows.map(function (row, pos) {
        return { row: row, key: cellKey(row, index), pos: pos };
      });
      keyed.sort(function (x, y) {
        var emptyX = x.key === "";
        var emptyY = y.key === "";
        if (emptyX !== emptyY) return emptyX ? 1 : -1;
        var c = compare(x.key, y.key);
        if (descending) c = -c;
        return c || x.pos - y.pos;
      });
      keyed.forEach(function (k) {
        body.appendChild(k.row);
      });
    });
  }

  function makeSortable(table) {
    if (!table.tHead || !table.tHead.rows.length) return;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      if (th.hasAttribute("data-nosort")) return;
      th.tabIndex = 0;
      th.title = "Sort by " + th.textContent.trim();
      th.addEventListener("click", function () {
        sortBy(table, th);
      });
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          sortBy(table, th);
        }
      });
    });
  }

  function init() {
    document.querySelectorAll("table.sortable").forEach(makeSortable);
  }

  window.stormui = { makeSortable: makeSortable, sortBy: sortBy };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
