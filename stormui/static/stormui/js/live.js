// Storm UI: live pages. Each page opens one socket and swaps in what the server sends: the
// page's regions, rendered by the server from the page's own templates, morphed in by element
// id (vendor/idiomorph), so a live page shows byte for byte what a reload would. This script
// keeps the connection (backoff, resync), says whether the page is live, keeps the user's
// sort order, highlights what changed, and runs the error feed's pause and filters. Pages
// work without it. No data is ever turned into markup here: markup comes from the server.
"use strict";

(function () {
  // a page asked for while the cluster is being read: /readyz says how far the read has got,
  // and once it is done the page reloads into the one asked for
  var syncing = document.getElementById("syncing");
  if (syncing && window.fetch) setInterval(function () {
    fetch(syncing.getAttribute("data-readyz"), { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (body) {
      if (!body.syncing) location.reload();
      else if (syncing.textContent !== body.reason) syncing.textContent = body.reason;
    }, function () {});
  }, 1000);
  var statusEl = document.getElementById("data-status");
  if (!statusEl || !window.WebSocket || !window.Idiomorph) return;
  var kind = statusEl.getAttribute("data-live");
  if (!kind) return;

  var RECENT_SECS = 30 * 60;
  var MAX_FEED = 1000;
  var BACKOFF_CAP_MS = 10000;
  var CLOSE_LOGGED_OUT = 4401;
  var CLOSE_NOT_FOUND = 4404;

  var socket = null;
  var live = false; // a snapshot arrived on the open socket
  var ended = ""; // "gone" or "logged-out": the page stops trying
  var attempts = 0;
  var retryAt = 0;
  var zkConnected = readZk();
  var lastAsOf = 0;
  // the relay ticks every socket: two ticks without a word and the page says it is stale
  var staleMs = 2000 * (Number(statusEl.getAttribute("data-tick-secs")) || 5);
  var lastNews = Date.now();
  // the server's clock minus ours, so that ages match the server's figures
  var skew = Number(statusEl.getAttribute("data-as-of")) * 1000 - Date.now() || 0;

  function $(id) { return document.getElementById(id); }
  function setText(node, text) { if (node && node.textContent !== text) node.textContent = text; }
  function serverNow() { return (Date.now() + skew) / 1000; }

  function flash(node) {
    node.classList.add("live-new");
    setTimeout(function () { node.classList.remove("live-new"); }, 5000);
  }

  function readZk() {
    var zk = $("zk-status");
    return !zk || zk.getAttribute("data-connected") === "true";
  }

  // -- the indicator --------------------------------------------------------------------------

  function updateIndicator() {
    var ind = $("live-status");
    if (!ind) return;
    var state = "live";
    var text = "Live";
    if (ended === "gone") {
      state = "gone";
      text = "Not live: this storm is not in ZooKeeper";
    } else if (ended === "logged-out") {
      state = "logged-out";
      text = "Not live: you were logged out. ";
    } else if (!live && retryAt) {
      var secs = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      state = "reconnecting";
      text = "Not live: reconnecting" + (secs ? " in " + secs + "s" : "…") + ", figures may be stale";
    } else if (!live) {
      state = "connecting";
      text = "Connecting…";
    } else if (Date.now() - lastNews > staleMs) {
      state = "stale";
      text = "Connected, but stale: no news for " + Math.floor((Date.now() - lastNews) / 1000) + " s";
    } else if (!zkConnected) {
      state = "zk-disconnected";
      text = "Live, but ZooKeeper is disconnected: figures may be stale";
    }
    ind.setAttribute("data-state", state);
    ind.className = "zk " + (state === "live" ? "zk-connected" : "zk-disconnected");
    setText(ind, text);
    if (state === "logged-out") {
      var login = document.createElement("a");
      login.id = "live-login";
      login.href = statusEl.getAttribute("data-login-url") + "?next=" + encodeURIComponent(location.pathname + location.search);
      login.textContent = "Log in again";
      ind.appendChild(login);
    }
    document.body.classList.toggle("live-stale", state !== "live");
  }

  // -- the socket -------------------------------------------------------------------------------

  function socketUrl() {
    var params = [];
    function param(name, value) {
      if (value) params.push(name + "=" + encodeURIComponent(value));
    }
    var path = "/ws/" + kind + "/";
    if (kind === "storm") {
      path = "/ws/storms/" + encodeURIComponent(statusEl.getAttribute("data-live-storm")) + "/";
      var task = statusEl.getAttribute("data-live-task");
      if (task) param("task", task);
      else param("component", statusEl.getAttribute("data-live-component"));
      param("window", statusEl.getAttribute("data-window"));
    } else if (kind === "cluster") {
      param("supervisor", statusEl.getAttribute("data-live-supervisor"));
      if (statusEl.getAttribute("data-live-page") === "supervisors") param("page", "supervisors");
    } else if (kind === "errors") {
      var f = filterValues();
      param("storm", f.storm);
      param("component", f.component);
      param("q", f.q);
    } else if (kind === "timeline") params.push(statusEl.getAttribute("data-live-query"));
    location.search.replace(/[?&]((?:\w+_(?:q|page)|range)=[^&]*)/g, function (m, p) { params.push(p); }); // the tables' pages and filters, the charts' range
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path + "?" + params.join("&");
  }

  function connect() {
    retryAt = 0;
    lastNews = Date.now();
    updateIndicator();
    var ws = new WebSocket(socketUrl());
    socket = ws;
    ws.onmessage = function (event) {
      var msg;
      lastNews = Date.now();
      try { msg = JSON.parse(event.data); } catch (e) { return; }
      handle(msg);
      updateIndicator();
    };
    ws.onclose = function (event) {
      if (socket !== ws) return;
      socket = null;
      live = false;
      if (event.code === CLOSE_NOT_FOUND || event.code === CLOSE_LOGGED_OUT) {
        ended = event.code === CLOSE_NOT_FOUND ? "gone" : "logged-out";
        updateIndicator();
        return;
      }
      // exponential backoff with jitter, capped; reset once a snapshot arrives
      var delay = Math.min(BACKOFF_CAP_MS, 500 * Math.pow(2, attempts));
      delay = Math.round(delay * (0.8 + Math.random() * 0.4));
      attempts += 1;
      retryAt = Date.now() + delay;
      updateIndicator();
      setTimeout(connect, delay);
    };
  }

  function handle(msg) {
    if (msg.type === "tick") return;
    if (msg.type === "status") {
      zkConnected = !!msg.zk_connected;
      swap(msg.html);
      return;
    }
    if (msg.type === "error" || msg.type === "event") {
      if (kind === "errors" || kind === "timeline") feedError(msg);
      return; // other pages: the page's own update follows with the error in place
    }
    if (msg.removed) {
      ended = "gone";
      return;
    }
    if (msg.type === "snapshot") {
      live = true;
      attempts = 0;
      lastAsOf = 0;
      if (kind === "errors") {
        buffered = [];
        showBuffered();
      }
    } else if (msg.as_of < lastAsOf) {
      return; // an update older than what the page shows
    }
    if (msg.as_of) {
      lastAsOf = msg.as_of;
      skew = msg.as_of * 1000 - Date.now();
      statusEl.setAttribute("data-as-of", String(Math.floor(msg.as_of)));
    }
    if (msg.zk_connected !== undefined) zkConnected = !!msg.zk_connected;
    swap(msg.html);
    if (kind === "errors") applyFilters();
  }

  // -- swapping regions in --------------------------------------------------------------------

  // a sortable table's sort, by its place in its region: the morph keeps rows, not the order
  function sortState(region) {
    var out = [];
    region.querySelectorAll("table.sortable").forEach(function (table, i) {
      var th = table.querySelector("thead th[aria-sort]");
      if (th) out.push({ index: i, column: th.cellIndex, order: th.getAttribute("aria-sort") });
    });
    return out;
  }

  function restoreSort(region, state) {
    var tables = region.querySelectorAll("table.sortable");
    tables.forEach(function (table) {
      if (!table._sortable && window.stormui) {
        window.stormui.makeSortable(table);
        table._sortable = true;
      }
    });
    state.forEach(function (s) {
      var table = tables[s.index];
      var th = table && table.tHead && table.tHead.rows[0].cells[s.column];
      if (th) window.stormui.sortBy(table, th, s.order === "descending");
    });
  }

  var changed = [];
  var morphing = {
    morphStyle: "outerHTML",
    callbacks: {
      afterNodeAdded: function (node) {
        if (node.nodeType !== 1) return;
        // what came in whole: its rows and items are new, or it is
        var items = node.querySelectorAll("tr[id], li.error-item");
        if (!items.length) items = [node];
        Array.prototype.forEach.call(items, function (item) {
          if (item.matches("li.error-item")) markNew(item);
          changed.push(item);
        });
      },
      beforeNodeMorphed: function (old, next) {
        // a figure that changed is highlighted; a highlight running is kept
        if (old.nodeType === 1 && (old.hasAttribute("data-field") || old.tagName === "DD")) {
          if (old.textContent !== next.textContent) changed.push(old);
        }
        return true;
      },
      beforeAttributeUpdated: function (name, node) {
        // a highlight running, what the script made of a sortable column, a fold opened, stay
        if (name === "class" && node.classList.contains("live-new")) return false;
        return !/^(TH (tabindex|title|aria-sort)|DETAILS open)$/.test(node.tagName + " " + name);
      },
      beforeNodeRemoved: function (node) {
        return !(node.nodeType === 1 && node.classList.contains("live-new-badge"));
      },
    },
  };

  function swap(html) {
    if (!html) return;
    Object.keys(html).forEach(function (id) {
      var region = $(id);
      if (!region) return;
      var state = sortState(region);
      Idiomorph.morph(region, html[id], morphing);
      region = $(id);
      if (region) restoreSort(region, state);
    });
    changed.splice(0).forEach(function (node) {
      if (node.isConnected) flash(node);
    });
  }

  function markNew(item) {
    var meta = item.querySelector(".error-meta");
    if (!meta || meta.querySelector(".live-new-badge")) return;
    var badge = document.createElement("span");
    badge.className = "badge badge-recent live-new-badge";
    badge.textContent = "new";
    var after = meta.querySelector(".badge-recent") || meta.querySelector(".ago");
    meta.insertBefore(badge, after ? after.nextSibling : meta.firstChild);
    meta.insertBefore(document.createTextNode(" "), badge);
  }

  // -- the error feed ---------------------------------------------------------------------------

  var paused = false;
  var buffered = [];

  function filterValues() {
    function value(id) { return $(id) ? $(id).value.trim() : ""; }
    return { storm: value("filter-storm"), component: value("filter-component"), q: value("filter-q") };
  }

  function matches(item, f) {
    if (f.storm && item.getAttribute("data-storm-id") !== f.storm) return false;
    if (f.component && item.getAttribute("data-component-id") !== f.component) return false;
    if (f.q) {
      var text = item.querySelector(".error-text");
      if (!text || text.textContent.toLowerCase().indexOf(f.q.toLowerCase()) < 0) return false;
    }
    return true;
  }

  function applyFilters() {
    var feed = $("error-feed");
    if (!feed) return;
    var f = filterValues();
    Array.prototype.forEach.call(feed.children, function (item) {
      item.hidden = !matches(item, f);
    });
  }

  function parseItem(html) {
    var holder = document.createElement("template");
    holder.innerHTML = html; // the server's rendering of the error: its text is escaped there
    return holder.content.firstElementChild;
  }

  function insertError(msg) {
    var feed = $("error-feed") || $("timeline-feed");
    var item = msg.html && parseItem(msg.html);
    if (!feed || !item) return;
    if ($(item.id)) $(item.id).parentNode.removeChild($(item.id)); // an event told again, updated
    var empty = $("no-errors") || $("no-events");
    if (empty) empty.parentNode.removeChild(empty);
    item.hidden = !matches(item, filterValues());
    markNew(item);
    feed.insertBefore(item, feed.firstChild);
    while (feed.children.length > MAX_FEED) feed.removeChild(feed.lastChild);
    flash(item);
  }

  function feedError(msg) {
    if (paused) {
      buffered.push(msg);
      showBuffered();
    } else {
      insertError(msg);
    }
  }

  function showBuffered() {
    var note = $("feed-buffered");
    if (!note) return;
    note.hidden = !buffered.length;
    setText(note, buffered.length + " new error" + (buffered.length === 1 ? "" : "s") + " waiting");
  }

  function setupFeed() {
    var controls = $("feed-controls");
    if (kind !== "errors" || !controls) return;
    controls.hidden = false;
    var pause = $("feed-pause");
    pause.addEventListener("click", function () {
      paused = !paused;
      pause.setAttribute("aria-pressed", paused ? "true" : "false");
      setText(pause, paused ? "Resume" : "Pause");
      if (!paused) {
        buffered.splice(0).forEach(insertError);
        showBuffered();
      }
    });
    ["filter-storm", "filter-component", "filter-q"].forEach(function (id) {
      var node = $(id);
      if (node) node.addEventListener("input", applyFilters);
    });
  }

  // -- ages: between updates, the clock moves them ------------------------------------------------

  function ago(age) {
    age = Math.floor(age);
    if (isNaN(age)) return "—";
    if (age < 0) return "just now";
    if (age < 60) return age + "s ago";
    if (age < 3600) return Math.floor(age / 60) + "m ago";
    if (age < 86400) return Math.floor(age / 3600) + "h ago";
    return Math.floor(age / 86400) + "d ago";
  }

  function refreshAges() {
    var now = serverNow();
    document.querySelectorAll("time[data-epoch]").forEach(function (t) {
      var text = ago(now - Number(t.getAttribute("data-epoch")));
      if (t.hasAttribute("title")) {
        setText(t, text); // `when`: the age is the text
      } else {
        var next = t.nextElementSibling; // `stamp`: the age follows the time
        if (next && next.classList.contains("ago")) setText(next, text);
      }
    });
    document.querySelectorAll(".error-item.recent[data-time-secs]").forEach(function (item) {
      if (now - Number(item.getAttribute("data-time-secs")) >= RECENT_SECS) {
        item.classList.remove("recent");
        var b = item.querySelector(".badge-recent:not(.live-new-badge)");
        if (b) b.parentNode.removeChild(b);
      }
    });
  }

  var ticks = 0;
  setInterval(function () {
    ticks += 1;
    if (retryAt || live) updateIndicator();
    if (ticks % 5 === 0) refreshAges();
  }, 1000);

  if ($("live-indicator")) $("live-indicator").hidden = false;
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table._sortable = true; // stormui.js made it sortable as the page loaded
  });
  setupFeed();
  connect();
  window.stormuiLive = {
    state: function () {
      var ind = $("live-status");
      return ind ? ind.getAttribute("data-state") : null;
    },
  };
})();
