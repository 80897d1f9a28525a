// Storm UI: live pages. Each page opens one socket (/ws/cluster/, /ws/storms/<id>/ or
// /ws/errors/), takes the snapshot the server sends first, then patches itself in place with
// each message. Pages work without this script; with it they never go silently stale: the
// indicator says when the socket or ZooKeeper is down, and every (re)connect resyncs from a
// fresh snapshot. Data only ever goes into the page as text (textContent), never as markup.
"use strict";

(function () {
  var statusEl = document.getElementById("data-status");
  if (!statusEl || !window.WebSocket) return;
  var kind = statusEl.getAttribute("data-live");
  if (!kind) return;

  var PAGE_STORM = statusEl.getAttribute("data-live-storm") || "";
  // a component's or task's page: its socket is narrowed to the component, with task stats
  var PAGE_COMPONENT = statusEl.getAttribute("data-live-component") || "";
  var WINDOW = statusEl.getAttribute("data-window") || "all-time";
  var RECENT_SECS = 30 * 60;
  var MAX_FEED = 1000;
  var BACKOFF_CAP_MS = 10000;

  var socket = null;
  var live = false; // a snapshot arrived on the open socket
  var gone = false; // the storm of this page is unknown to the server
  var attempts = 0;
  var retryAt = 0;
  var zkConnected = readZk();
  var lastAsOf = 0;
  // the server's clock minus ours, so that ages match the server's figures
  var skew = Number(statusEl.getAttribute("data-as-of")) * 1000 - Date.now() || 0;

  // -- small helpers ------------------------------------------------------------------

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (attrs[k] !== null && attrs[k] !== undefined) node.setAttribute(k, attrs[k]);
      });
    }
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function setText(node, text) {
    if (node && node.textContent !== text) node.textContent = text;
  }

  function setChildren(node, children) {
    if (!node) return;
    while (node.firstChild) node.removeChild(node.firstChild);
    children.forEach(function (c) {
      if (c === null || c === undefined) return;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
  }

  function serverNow() {
    return (Date.now() + skew) / 1000;
  }

  function count(n) {
    return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US");
  }

  function ms(v) {
    if (v === null || v === undefined) return "—";
    return Number(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }

  function duration(secs) {
    if (secs === null || secs === undefined) return "—";
    secs = Math.max(Math.floor(secs), 0);
    var d = Math.floor(secs / 86400);
    var h = Math.floor((secs % 86400) / 3600);
    var m = Math.floor((secs % 3600) / 60);
    var s = secs % 60;
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    if (m) return m + "m " + s + "s";
    return s + "s";
  }

  function ago(age) {
    if (age === null || age === undefined || isNaN(age)) return "—";
    age = Math.floor(age);
    if (age < 0) return "just now";
    if (age < 60) return age + "s ago";
    if (age < 3600) return Math.floor(age / 60) + "m ago";
    if (age < 86400) return Math.floor(age / 3600) + "h ago";
    return Math.floor(age / 86400) + "d ago";
  }

  function iso(secs) {
    return new Date(secs * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
  }

  function utc(secs) {
    return iso(secs).replace("T", " ").replace("Z", " UTC");
  }

  function utcClock(secs) {
    return iso(secs).slice(11, 19) + " UTC";
  }

  function hostport(host, port) {
    if ((host === null || host === undefined) && (port === null || port === undefined)) return "—";
    return (host || "?") + ":" + (port === null || port === undefined ? "?" : port);
  }

  function firstLine(text) {
    var lines = String(text).split(/\r?\n/);
    for (var i = 0; i < lines.length; i++) if (lines[i].trim()) return lines[i].trim();
    return "";
  }

  // as the `when` tag renders it: the age, with the UTC time as its title
  function when(secs) {
    if (secs === null || secs === undefined) return "—";
    return el("time", { datetime: iso(secs), "data-epoch": String(secs), title: utc(secs) }, [
      ago(serverNow() - secs),
    ]);
  }

  // as the `stamp` tag renders it: the UTC time, then its age
  function stamp(secs) {
    var frag = document.createDocumentFragment();
    frag.appendChild(el("time", { datetime: iso(secs), "data-epoch": String(secs) }, [utc(secs)]));
    frag.appendChild(document.createTextNode(" "));
    frag.appendChild(el("span", { class: "ago" }, [ago(serverNow() - secs)]));
    return frag;
  }

  function badge(cls, text) {
    return el("span", { class: "badge " + cls }, [text]);
  }

  function seg(value) {
    return encodeURIComponent(value);
  }

  function stormUrl(id) {
    return "/storms/" + seg(id) + "/";
  }

  function componentUrl(stormId, cid) {
    // as the `href` tag: an id no URL can hold links nowhere
    return cid.indexOf("/") >= 0 ? null : stormUrl(stormId) + "components/" + seg(cid) + "/";
  }

  function taskUrl(stormId, taskId) {
    return stormUrl(stormId) + "tasks/" + seg(String(taskId)) + "/";
  }

  function field(row, name) {
    return row.querySelector('[data-field="' + name + '"]');
  }

  function num(cell, value, sortKey) {
    if (!cell) return;
    setText(cell, typeof value === "string" ? value : count(value));
    if (sortKey !== undefined) cell.setAttribute("data-sort", sortKey === null ? "" : String(sortKey));
  }

  function setStat(id, value, badWhen, cls) {
    var dd = $(id);
    if (!dd) return;
    var target = dd.querySelector("a") || dd;
    setText(target, typeof value === "string" ? value : count(value));
    if (cls && dd.parentNode) dd.parentNode.classList.toggle(cls, !!badWhen);
  }

  function flash(node) {
    node.classList.add("live-new");
    setTimeout(function () {
      node.classList.remove("live-new");
    }, 5000);
  }

  // -- status and the indicator ---------------------------------------------------------

  function readZk() {
    var zk = $("zk-status");
    return !zk || zk.getAttribute("data-connected") === "true";
  }

  function applyStatus(connected, syncedAt, asOf) {
    zkConnected = !!connected;
    var zk = $("zk-status");
    if (zk) {
      zk.setAttribute("data-connected", zkConnected ? "true" : "false");
      zk.className = "zk " + (zkConnected ? "zk-connected" : "zk-disconnected");
      if (zkConnected) {
        setChildren(zk, ["ZooKeeper connected"]);
      } else {
        zk.setAttribute("data-synced-at", syncedAt ? String(Math.floor(syncedAt)) : "");
        var since = syncedAt
          ? ["(stale since ", el("time", { datetime: iso(syncedAt) }, [utcClock(syncedAt)]), ")"]
          : ["(never synced)"];
        setChildren(zk, [el("strong", null, ["ZooKeeper disconnected"]), " "].concat(since));
      }
    }
    if (asOf) {
      skew = asOf * 1000 - Date.now();
      statusEl.setAttribute("data-as-of", String(Math.floor(asOf)));
      var asOfEl = $("as-of");
      if (asOfEl) {
        asOfEl.setAttribute("datetime", iso(asOf));
        setText(asOfEl, utcClock(asOf));
      }
    }
    updateIndicator();
  }

  function updateIndicator() {
    var ind = $("live-status");
    if (!ind) return;
    var state;
    var text;
    if (gone) {
      state = "gone";
      text = "Not live: this storm is not in ZooKeeper";
    } else if (!live && retryAt) {
      var secs = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      state = "reconnecting";
      text = "Not live: reconnecting" + (secs ? " in " + secs + "s" : "…") + ", figures may be stale";
    } else if (!live) {
      state = "connecting";
      text = "Connecting…";
    } else if (!zkConnected) {
      state = "zk-disconnected";
      text = "Live, but ZooKeeper is disconnected: figures may be stale";
    } else {
      state = "live";
      text = "Live";
    }
    ind.setAttribute("data-state", state);
    ind.className = "zk " + (state === "live" ? "zk-connected" : "zk-disconnected");
    setText(ind, text);
    document.body.classList.toggle("live-stale", state !== "live");
  }

  // -- the socket ---------------------------------------------------------------------------

  function socketUrl() {
    var path;
    if (kind === "storm") {
      path = "/ws/storms/" + seg(PAGE_STORM) + "/";
      if (PAGE_COMPONENT) path += "?component=" + seg(PAGE_COMPONENT);
    }
    else path = "/ws/" + kind + "/";
    if (kind === "errors") path += "?" + feedFilterQuery();
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
  }

  function connect() {
    retryAt = 0;
    updateIndicator();
    var ws = new WebSocket(socketUrl());
    socket = ws;
    ws.onmessage = function (event) {
      var msg;
      try {
        msg = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      handle(msg);
    };
    ws.onclose = function (event) {
      if (socket !== ws) return;
      socket = null;
      live = false;
      if (event.code === 4404) {
        gone = true;
        showGone(true);
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
    if (msg.type === "status") {
      applyStatus(msg.zk_connected, msg.synced_at, null);
      return;
    }
    if (msg.type === "snapshot") {
      live = true;
      attempts = 0;
      lastAsOf = 0;
    }
    if (kind === "cluster" && (msg.type === "snapshot" || msg.type === "cluster")) applyCluster(msg);
    else if (kind === "storm" && (msg.type === "snapshot" || msg.type === "storm")) applyStorm(msg);
    else if (kind === "storm" && msg.type === "error") stormError(msg);
    else if (kind === "errors" && msg.type === "snapshot") feedSnapshot(msg);
    else if (kind === "errors" && msg.type === "error") feedError(msg);
    updateIndicator();
  }

  // -- tables -----------------------------------------------------------------------------

  function rowsBy(body, attr) {
    var out = {};
    Array.prototype.forEach.call(body.rows, function (row) {
      out[row.getAttribute(attr)] = row;
    });
    return out;
  }

  function makeTable(id, headers, anchor) {
    var head = el(
      "tr",
      null,
      headers.map(function (h) {
        return el("th", { scope: "col", class: h[1] ? "num" : null }, [h[0]]);
      })
    );
    var table = el("table", { class: "grid sortable", id: id }, [el("thead", null, [head]), el("tbody")]);
    var wrap = el("div", { class: "table-wrap" }, [table]);
    anchor.parentNode.insertBefore(wrap, anchor.nextSibling);
    if (window.stormui) window.stormui.makeSortable(table);
    return table;
  }

  function cells(row, spec) {
    spec.forEach(function (s) {
      row.appendChild(el("td", { "data-field": s[0], class: s[1] || null }));
    });
  }

  // one key per row's data: a row is redrawn only when its data changed
  function changed(row, data) {
    var key = JSON.stringify(data);
    if (row._liveKey === key) return false;
    row._liveKey = key;
    return true;
  }

  // -- the cluster, supervisors and supervisor pages ----------------------------------------

  function applyCluster(m) {
    if (m.as_of < lastAsOf) return;
    lastAsOf = m.as_of;
    applyStatus(m.zk_connected, m.synced_at, m.as_of);
    var s = m.summary;
    setStat("supervisors-count", s.supervisors);
    setStat("slots-used", s.slots_used);
    setStat("slots-free", s.slots_free);
    setStat("slots-total", s.slots_total);
    setStat("storms-count", s.storms);
    setStat("tasks-total", s.tasks_total);
    setStat("tasks-alive", s.tasks_alive);
    setStat("tasks-dead", s.tasks_dead, s.tasks_dead > 0, "stat-bad");
    setStat("errors-10m", s.errors_last_10m, s.errors_last_10m > 0, "stat-warn");
    if ($("storms-heading")) patchStorms(m.storms);
    var names = {};
    m.storms.forEach(function (st) {
      names[st.id] = st.name;
    });
    patchSupervisors(m.supervisors);
    patchSupervisorPage(m.supervisors, names);
    patchSupervisorDetails(m.supervisors, names);
    if ($("latest-errors-heading")) patchLatestErrors(m.latest_errors || []);
  }

  function patchStorms(storms) {
    var table = $("storm-table");
    if (!table) {
      if (!storms.length) return;
      var empty = $("storms-empty");
      table = makeTable(
        "storm-table",
        [["Name"], ["Id"], ["Status"], ["Uptime", 1], ["Workers", 1], ["Tasks", 1], ["Alive", 1]],
        empty || $("storms-heading")
      );
      if (empty) empty.parentNode.removeChild(empty);
    }
    var body = table.tBodies[0];
    var rows = rowsBy(body, "data-storm-id");
    var seen = {};
    storms.forEach(function (s) {
      seen[s.id] = true;
      var row = rows[s.id];
      if (!row) {
        row = el("tr", { "data-storm-id": s.id });
        cells(row, [["name"], ["id", "mono"], ["status"], ["uptime", "num"], ["workers", "num"], ["tasks", "num"], ["alive", "num"]]);
        insertSorted(body, row, s.name.toLowerCase() + "\u0000" + s.id, function (r) {
          var link = field(r, "name");
          return (link ? link.textContent.trim().toLowerCase() : "") + "\u0000" + r.getAttribute("data-storm-id");
        });
        flash(row);
      }
      if (!changed(row, s)) return;
      row.classList.toggle("unreadable", !!s.unreadable);
      setChildren(field(row, "name"), [
        el("a", { href: stormUrl(s.id) }, [s.name]),
        s.unreadable ? " " : null,
        s.unreadable ? badge("badge-unreadable", "unreadable") : null,
      ]);
      setText(field(row, "id"), s.id);
      var status = s.status || "";
      setChildren(field(row, "status"), [
        el("span", { class: "status status-" + status.toLowerCase() }, [status || "—"]),
      ]);
      num(field(row, "uptime"), duration(s.uptime_secs), s.uptime_secs === null ? -1 : s.uptime_secs);
      num(field(row, "workers"), s.workers_total);
      num(field(row, "tasks"), s.tasks_total);
      var dead = s.tasks_total - s.tasks_alive;
      var alive = field(row, "alive");
      alive.classList.toggle("bad", dead > 0);
      alive.setAttribute("data-sort", String(s.tasks_alive));
      setChildren(alive, [count(s.tasks_alive), dead > 0 ? " " : null, dead > 0 ? badge("badge-dead", dead + " dead") : null]);
    });
    Object.keys(rows).forEach(function (id) {
      if (!seen[id]) body.removeChild(rows[id]);
    });
  }

  function insertSorted(body, row, key, keyOf) {
    var rows = body.rows;
    for (var i = 0; i < rows.length; i++) {
      if (keyOf(rows[i]) > key) {
        body.insertBefore(row, rows[i]);
        return;
      }
    }
    body.appendChild(row);
  }

  function patchSupervisors(sups) {
    var table = $("supervisor-table");
    if (!table) return;
    var body = table.tBodies[0];
    var rows = rowsBy(body, "data-supervisor-id");
    var seen = {};
    sups.forEach(function (s) {
      seen[s.id] = true;
      var row = rows[s.id];
      if (!row) {
        row = el("tr", { "data-supervisor-id": s.id });
        cells(row, [["id", "mono"], ["host"], ["state"], ["uptime", "num"], ["heartbeat", "num"], ["slots-total", "num"], ["slots-used", "num"], ["slots-free", "num"]]);
        body.appendChild(row);
        flash(row);
      }
      if (!changed(row, s)) return;
      row.classList.toggle("lost", !!s.lost);
      row.classList.toggle("unreadable", !!s.unreadable);
      setChildren(field(row, "id"), [el("a", { href: "/supervisors/" + seg(s.id) + "/" }, [s.id])]);
      setText(field(row, "host"), s.host || "—");
      var state;
      if (s.unreadable) state = [badge("badge-unreadable", "unreadable")];
      else if (s.lost) state = [badge("badge-lost", "lost"), s.present ? null : " ", s.present ? null : el("span", { class: "muted" }, ["node gone"])];
      else state = [el("span", { class: "ok" }, ["ok"])];
      setChildren(field(row, "state"), state);
      num(field(row, "uptime"), duration(s.uptime_secs), s.uptime_secs === null ? -1 : s.uptime_secs);
      var hb = field(row, "heartbeat");
      setChildren(hb, [when(s.time_secs)]);
      hb.setAttribute("data-sort", String(s.time_secs || 0));
      num(field(row, "slots-total"), s.slots_total);
      num(field(row, "slots-used"), s.slots_used);
      num(field(row, "slots-free"), Math.max(s.slots_total - s.slots_used, 0));
    });
    Object.keys(rows).forEach(function (id) {
      if (!seen[id]) body.removeChild(rows[id]);
    });
  }

  // a badge at the end of a heading, there or not
  function toggleBadge(parent, cls, text, on) {
    var b = parent.querySelector(".badge." + cls);
    if (on && !b) {
      parent.appendChild(document.createTextNode(" "));
      parent.appendChild(badge(cls, text));
    } else if (!on && b) {
      if (b.previousSibling && b.previousSibling.nodeType === 3) parent.removeChild(b.previousSibling);
      parent.removeChild(b);
    }
  }

  // the workers of a supervisor and their tasks, as _worker_tasks.html renders them
  function workerTasks(holder, workers, names, tableId) {
    if (!holder || !workers) return;
    var table = holder.querySelector("table.worker-tasks");
    if (!table) {
      if (!workers.length) return;
      var head = el("tr", null, [["Port", 1], ["Storm"], ["Tasks", 1], ["Alive", 1], ["Tasks (component)"]].map(function (h) {
        return el("th", { scope: "col", class: h[1] ? "num" : null }, [h[0]]);
      }));
      table = el("table", { class: "grid sortable worker-tasks", id: tableId || null }, [el("thead", null, [head]), el("tbody")]);
      var empty = holder.querySelector("p.empty");
      var wrap = el("div", { class: "table-wrap" }, [table]);
      if (empty) holder.replaceChild(wrap, empty);
      else holder.appendChild(wrap);
      if (window.stormui) window.stormui.makeSortable(table);
    }
    var body = table.tBodies[0];
    var rows = {};
    Array.prototype.forEach.call(body.rows, function (r) {
      rows[r.getAttribute("data-storm-id") + ":" + r.getAttribute("data-port")] = r;
    });
    var seen = {};
    workers.forEach(function (w) {
      var key = w.storm_id + ":" + w.port;
      seen[key] = true;
      var row = rows[key];
      if (!row) {
        row = el("tr", { "data-storm-id": w.storm_id, "data-port": String(w.port) });
        cells(row, [["port", "num"], ["storm"], ["tasks", "num"], ["alive", "num"], ["task-list", "ids"]]);
        body.appendChild(row);
        flash(row);
      }
      var data = { w: w, name: names[w.storm_id] || w.storm_id };
      if (!changed(row, data)) return;
      setText(field(row, "port"), String(w.port));
      setChildren(field(row, "storm"), [el("a", { href: stormUrl(w.storm_id) }, [data.name])]);
      setText(field(row, "tasks"), String(w.task_ids.length));
      setText(field(row, "alive"), String(w.tasks_alive));
      taskChips(field(row, "task-list"), w);
    });
    Object.keys(rows).forEach(function (key) {
      if (!seen[key]) body.removeChild(rows[key]);
    });
  }

  function taskChips(cell, w) {
    if (!cell) return;
    var old = {};
    Array.prototype.forEach.call(cell.querySelectorAll("a.task-chip"), function (a) {
      old[a.getAttribute("data-task-id")] = a;
    });
    var dead = {};
    w.dead_task_ids.forEach(function (t) {
      dead[t] = true;
    });
    setChildren(cell, w.task_ids.map(function (t) {
      var chip = old[String(t)];
      // the component is not in the message: a chip keeps the one the page was rendered with
      var comp = chip ? chip.querySelector(".muted") : null;
      var parts = [String(t)];
      if (comp) parts.push(" ", el("span", { class: "muted" }, [comp.textContent]));
      if (dead[t]) parts.push(" ", badge("badge-dead", "dead"));
      return el("a", { href: taskUrl(w.storm_id, t), "data-task-id": String(t), class: "task-chip" + (dead[t] ? " dead" : "") }, parts);
    }));
  }

  // the supervisors page: a section per supervisor with its workers
  function patchSupervisorDetails(sups, names) {
    var sections = document.querySelectorAll("section.supervisor-detail[data-supervisor-id]");
    if (!sections.length && !$("supervisors-summary")) return;
    var byId = {};
    Array.prototype.forEach.call(sections, function (sec) {
      byId[sec.getAttribute("data-supervisor-id")] = sec;
    });
    var seen = {};
    var main = document.querySelector("main.page");
    sups.forEach(function (s) {
      seen[s.id] = true;
      var sec = byId[s.id];
      if (!sec) {
        var hid = "sup-live-" + s.id.replace(/[^A-Za-z0-9_-]/g, "_");
        sec = el("section", { class: "supervisor-detail", "data-supervisor-id": s.id, "aria-labelledby": hid }, [
          el("h2", { id: hid }, [
            el("a", { href: "/supervisors/" + seg(s.id) + "/" }, [s.host || s.id]),
            " ",
            el("span", { class: "sub mono" }, [s.id]),
          ]),
          el("p", { class: "empty" }, ["No workers assigned."]),
        ]);
        main.appendChild(sec);
        flash(sec);
      }
      sec.classList.toggle("lost", !!s.lost);
      var h2 = sec.querySelector("h2");
      if (h2) {
        toggleBadge(h2, "badge-lost", "lost", !!s.lost);
        toggleBadge(h2, "badge-unreadable", "unreadable", !!s.unreadable);
      }
      workerTasks(sec, s.workers, names, null);
    });
    Object.keys(byId).forEach(function (id) {
      if (!seen[id]) byId[id].parentNode.removeChild(byId[id]);
    });
  }

  function patchSupervisorPage(sups, names) {
    var h1 = document.querySelector("h1[data-supervisor-id]");
    if (!h1) return;
    var id = h1.getAttribute("data-supervisor-id");
    var s = sups.filter(function (x) {
      return x.id === id;
    })[0];
    if (!s) {
      setText($("supervisor-state"), "gone");
      return;
    }
    h1.classList.toggle("lost", !!s.lost);
    toggleBadge(h1, "badge-lost", "lost", !!s.lost);
    toggleBadge(h1, "badge-unreadable", "unreadable", !!s.unreadable);
    setText($("supervisor-state"), s.unreadable ? "unreadable" : s.lost ? "lost" : "ok");
    var stateDd = $("supervisor-state");
    if (stateDd) stateDd.parentNode.classList.toggle("stat-bad", !!(s.lost || s.unreadable));
    setText($("supervisor-uptime"), duration(s.uptime_secs));
    setChildren($("supervisor-heartbeat"), [when(s.time_secs)]);
    setText($("supervisor-slots-total"), String(s.slots_total));
    setText($("supervisor-slots-used"), String(s.slots_used));
    setText($("supervisor-ports"), s.worker_ports.length ? s.worker_ports.join(", ") : "—");
    workerTasks($("supervisor-workers"), s.workers, names, "worker-table");
  }

  function patchLatestErrors(errors) {
    var list = $("latest-errors");
    var key = JSON.stringify(errors);
    if (list && list._liveKey === key) return;
    if (!list) {
      if (!errors.length) return;
      var empty = $("latest-errors-empty");
      list = el("ol", { class: "error-list", id: "latest-errors" });
      (empty || $("latest-errors-heading")).parentNode.insertBefore(list, empty);
      if (empty) empty.parentNode.removeChild(empty);
    }
    list._liveKey = key;
    setChildren(list, errors.map(function (e) {
      return errorItem(e);
    }));
  }

  // -- the storm, component and task pages --------------------------------------------------

  function showGone(on) {
    var notice = $("storm-gone");
    if (on && !notice) {
      notice = el("div", { class: "notice notice-bad", id: "storm-gone", role: "alert" }, [
        el("p", null, [
          el("strong", null, ["This storm is no longer in ZooKeeper."]),
          " What is shown is how it last was.",
        ]),
      ]);
      var main = document.querySelector("main.page") || document.body;
      var h1 = main.querySelector("h1");
      main.insertBefore(notice, h1 ? h1.nextSibling : main.firstChild);
    } else if (!on && notice) {
      notice.parentNode.removeChild(notice);
    }
  }

  function applyStorm(m) {
    if (m.removed) {
      showGone(true);
      return;
    }
    if (m.as_of < lastAsOf) return;
    lastAsOf = m.as_of;
    showGone(false);
    applyStatus(m.zk_connected, m.synced_at, m.as_of);
    var st = m.storm;
    var dead = st.tasks_total - st.tasks_alive;
    if ($("storm-summary")) {
      setText($("storm-name"), st.name);
      setText($("storm-status"), st.status);
      var status = document.querySelector("h1[data-storm-id] > .status");
      if (status) {
        status.className = "status status-" + (st.status || "").toLowerCase();
        setText(status, st.status);
      }
      setText($("storm-uptime"), duration(st.uptime_secs));
      setStat("storm-workers", st.workers_total);
      setStat("storm-tasks", st.tasks_total);
      setStat("storm-tasks-alive", st.tasks_alive, dead > 0, "stat-bad");
      setStat("storm-tasks-dead", dead, dead > 0, "stat-bad");
      windowStats("storm-stats", m.stats);
      componentRows("spout-table", m.spouts);
      componentRows("bolt-table", m.bolts);
      workerRows(m.workers);
    }
    var h1c = document.querySelector("h1[data-component-id]");
    if (h1c) {
      var cid = h1c.getAttribute("data-component-id");
      var comp = m.spouts.concat(m.bolts).filter(function (c) {
        return c.id === cid;
      })[0];
      if (comp) {
        setStat("component-tasks", comp.tasks);
        setStat("component-tasks-alive", comp.tasks_alive);
        setStat("component-tasks-dead", comp.tasks - comp.tasks_alive, comp.tasks > comp.tasks_alive, "stat-bad");
        windowStats("component-stats", comp.stats);
      }
      taskRows(m.tasks);
    }
    var h1t = document.querySelector("h1[data-task-id]");
    if (h1t) {
      var tid = Number(h1t.getAttribute("data-task-id"));
      var task = m.tasks.filter(function (t) {
        return t.id === tid;
      })[0];
      if (task) taskPage(h1t, task);
    }
  }

  function windowStats(id, stats) {
    var table = $(id);
    if (!table) return;
    Object.keys(stats).forEach(function (w) {
      var row = table.querySelector('tr[data-window="' + w + '"]');
      if (!row) return;
      var s = stats[w];
      num(field(row, "emitted"), s.emitted);
      num(field(row, "transferred"), s.transferred);
      num(field(row, "latency"), ms(s.latency_ms));
      num(field(row, "acked"), s.acked);
      num(field(row, "failed"), s.failed);
    });
  }

  // a storm's spouts or bolts: rows come and go with the components, as the table renders them
  function componentRows(id, comps) {
    var table = $(id);
    var empty = $(id + "-empty");
    if (!table) {
      if (!comps.length || !empty) return;
      var latency = id === "spout-table" ? "Complete latency (ms)" : "Process latency (ms)";
      table = makeTable(id, [["Id"], ["Tasks", 1], ["Alive", 1], ["Emitted", 1], ["Transferred", 1], [latency, 1], ["Acked", 1], ["Failed", 1], ["Last error"]], empty);
      empty.hidden = true;
    }
    if (empty) empty.hidden = comps.length > 0;
    var body = table.tBodies[0];
    var rows = rowsBy(body, "data-component-id");
    var seen = {};
    comps.forEach(function (c) {
      seen[c.id] = true;
      var row = rows[c.id];
      if (!row) {
        row = el("tr", { "data-storm-id": PAGE_STORM, "data-component-id": c.id });
        cells(row, [["id"], ["tasks", "num"], ["alive", "num"], ["emitted", "num"], ["transferred", "num"], ["latency", "num"], ["acked", "num"], ["failed", "num"], ["last-error", "last-error"]]);
        insertSorted(body, row, c.id, function (r) {
          return r.getAttribute("data-component-id");
        });
        flash(row);
      }
      if (!changed(row, c)) return;
      var href = componentUrl(PAGE_STORM, c.id);
      setChildren(field(row, "id"), [
        href ? el("a", { href: href }, [c.id]) : c.id,
        c.type === "unknown" ? " " : null,
        c.type === "unknown" ? badge("badge-muted", "unknown type") : null,
      ]);
      var dead = c.tasks - c.tasks_alive;
      row.classList.toggle("has-dead", dead > 0);
      num(field(row, "tasks"), c.tasks);
      var alive = field(row, "alive");
      alive.classList.toggle("bad", dead > 0);
      alive.setAttribute("data-sort", String(c.tasks_alive));
      setChildren(alive, [String(c.tasks_alive), dead > 0 ? " " : null, dead > 0 ? badge("badge-dead", dead + " dead") : null]);
      statCells(row, c.stats[WINDOW] || c.stats["all-time"]);
      lastErrorCell(field(row, "last-error"), c.last_error, true);
    });
    Object.keys(rows).forEach(function (cid) {
      if (!seen[cid]) body.removeChild(rows[cid]);
    });
    table.parentNode.hidden = !comps.length;
    if (!comps.length && !empty) {
      var kindName = id === "spout-table" ? "spouts" : "bolts";
      empty = el("p", { class: "empty", id: id + "-empty" }, ["No " + kindName + "."]);
      table.parentNode.parentNode.insertBefore(empty, table.parentNode.nextSibling);
    }
  }

  // a row's stats for the page's window, as the tables render them
  function statCells(row, w) {
    if (!w) return;
    num(field(row, "emitted"), w.emitted, w.emitted);
    num(field(row, "transferred"), w.transferred, w.transferred);
    num(field(row, "latency"), ms(w.latency_ms), w.latency_ms === null ? "" : w.latency_ms);
    num(field(row, "acked"), w.acked, w.acked);
    num(field(row, "failed"), w.failed, w.failed);
  }

  function lastErrorCell(cell, e, withHost) {
    if (!cell) return;
    cell.classList.toggle("recent", !!e && serverNow() - e.time_secs < RECENT_SECS);
    cell.setAttribute("data-sort", e ? String(e.time_secs) : "");
    var whenPart = [when(e ? e.time_secs : null)];
    if (e && withHost) whenPart.push(" · " + hostport(e.host, e.port));
    setChildren(cell, e ? [
      el("span", { class: "error-line" }, [firstLine(e.error)]),
      " ",
      el("span", { class: "error-when" }, whenPart),
    ] : []);
  }

  function workerRows(workers) {
    var table = $("worker-table");
    if (!table) return;
    var body = table.tBodies[0];
    var rows = {};
    Array.prototype.forEach.call(body.rows, function (r) {
      rows[r.getAttribute("data-node-id") + ":" + r.getAttribute("data-port")] = r;
    });
    var seen = {};
    workers.forEach(function (w) {
      var key = w.node_id + ":" + w.port;
      seen[key] = true;
      var row = rows[key];
      if (!row) {
        row = el("tr", { "data-storm-id": PAGE_STORM, "data-node-id": w.node_id, "data-port": String(w.port) });
        cells(row, [["node", "mono"], ["host"], ["port", "num"], ["tasks", "num"], ["task-ids", "ids"]]);
        body.appendChild(row);
        flash(row);
      }
      if (!changed(row, w)) return;
      setChildren(field(row, "node"), [el("a", { href: "/supervisors/" + seg(w.node_id) + "/" }, [w.node_id])]);
      setText(field(row, "host"), w.host || "—");
      setText(field(row, "port"), String(w.port));
      setText(field(row, "tasks"), String(w.task_ids.length));
      var links = [];
      w.task_ids.forEach(function (t, i) {
        if (i) links.push(" ");
        links.push(el("a", { href: taskUrl(PAGE_STORM, t) }, [String(t)]));
      });
      setChildren(field(row, "task-ids"), links);
    });
    Object.keys(rows).forEach(function (key) {
      if (!seen[key]) body.removeChild(rows[key]);
    });
  }

  function stateMarkup(t) {
    var out = [t.alive ? el("span", { class: "state state-alive" }, ["alive"]) : badge("badge-dead", "dead")];
    if (t.unreadable) out.push(" ", badge("badge-unreadable", "unreadable"));
    return out;
  }

  function taskRows(tasks) {
    var table = $("task-table");
    if (!table) return;
    var rows = rowsBy(table.tBodies[0], "data-task-id");
    tasks.forEach(function (t) {
      var row = rows[String(t.id)];
      if (!row || !changed(row, t)) return;
      row.classList.toggle("alive", t.alive);
      row.classList.toggle("dead", !t.alive);
      row.classList.toggle("unreadable", !!t.unreadable);
      setChildren(field(row, "state"), stateMarkup(t));
      setText(field(row, "host"), t.host || "—");
      setText(field(row, "port"), t.port === null ? "—" : String(t.port));
      num(field(row, "uptime"), duration(t.uptime_secs), t.uptime_secs === null ? -1 : t.uptime_secs);
      var age = field(row, "heartbeat-age");
      if (age) {
        if (t.heartbeat_time_secs === null) age.removeAttribute("data-age-epoch");
        else age.setAttribute("data-age-epoch", String(t.heartbeat_time_secs));
        age.setAttribute("data-sort", t.heartbeat_age_secs === null ? "" : String(t.heartbeat_age_secs));
        setText(age, t.heartbeat_time_secs === null ? "—" : ago(serverNow() - t.heartbeat_time_secs));
      }
      if (t.stats) statCells(row, t.stats[WINDOW] || t.stats["all-time"]);
      if (t.last_error !== undefined) lastErrorCell(field(row, "last-error"), t.last_error, false);
    });
  }

  function taskPage(h1, t) {
    if (!changed(h1, t)) return;
    h1.classList.toggle("alive", t.alive);
    h1.classList.toggle("dead", !t.alive);
    var old = h1.querySelectorAll(".state, .badge");
    Array.prototype.forEach.call(old, function (n) {
      n.parentNode.removeChild(n);
    });
    while (h1.lastChild && h1.lastChild.nodeType === 3 && !h1.lastChild.textContent.trim()) h1.removeChild(h1.lastChild);
    h1.appendChild(document.createTextNode(" "));
    stateMarkup(t).forEach(function (n) {
      h1.appendChild(typeof n === "string" ? document.createTextNode(n) : n);
    });
    setText($("task-state"), t.alive ? "alive" : "dead");
    setText($("task-hostport"), hostport(t.host, t.port));
    setText($("task-uptime"), duration(t.uptime_secs));
    var hb = $("task-heartbeat");
    if (hb) {
      hb.parentNode.classList.toggle("stat-bad", !t.alive);
      setChildren(hb, [t.heartbeat_time_secs === null ? "none" : stamp(t.heartbeat_time_secs)]);
    }
    if (t.stats) windowStats("task-stats", t.stats);
  }

  function prependTo(listId, emptyId, item, keep) {
    var list = $(listId);
    if (!list) {
      var empty = $(emptyId);
      if (!empty) return;
      list = el("ol", { class: "error-list", id: listId });
      empty.parentNode.insertBefore(list, empty);
      empty.parentNode.removeChild(empty);
    }
    list.insertBefore(item, list.firstChild);
    while (keep && list.children.length > keep) list.removeChild(list.lastChild);
    flash(item);
  }

  function stormError(e) {
    var h1c = document.querySelector("h1[data-component-id]");
    if (h1c && e.component_id === h1c.getAttribute("data-component-id")) {
      prependTo("component-errors", "component-errors-empty", errorItem(e, true), 0);
      var n = $("component-errors-count");
      if (n) setText(n, count(Number(n.textContent.replace(/,/g, "")) + 1));
    }
    var h1t = document.querySelector("h1[data-task-id]");
    if (h1t && String(e.task_id) === h1t.getAttribute("data-task-id")) {
      var recent = serverNow() - e.time_secs < RECENT_SECS;
      var item = el("li", {
        class: "error-item" + (recent ? " recent" : ""),
        "data-storm-id": e.storm_id,
        "data-task-id": String(e.task_id),
        "data-time-secs": String(e.time_secs),
      }, [
        el("div", { class: "error-meta" }, [
          stamp(e.time_secs),
          recent ? " " : null,
          recent ? badge("badge-recent", "recent") : null,
          " ",
          badge("badge-recent live-new-badge", "new"),
        ]),
        el("pre", { class: "error-text" }, [e.error]),
      ]);
      prependTo("task-errors", "task-errors-empty", item, 10); // a task keeps its newest ten
    }
  }

  // -- errors, as _error_item.html renders them -----------------------------------------------

  function stormName(id) {
    var option = document.querySelector('#filter-storm option[value="' + (window.CSS && CSS.escape ? CSS.escape(id) : id) + '"]');
    if (option) return option.textContent.replace(/ \(.*\)$/, "");
    var row = document.querySelector('#storm-table tr[data-storm-id="' + (window.CSS && CSS.escape ? CSS.escape(id) : id) + '"] [data-field="name"] a');
    return row ? row.textContent : id;
  }

  function errorItem(e, isNew) {
    var recent = serverNow() - e.time_secs < RECENT_SECS;
    var meta = [stamp(e.time_secs)];
    if (recent) meta.push(" ", badge("badge-recent", "recent"));
    if (isNew) meta.push(" ", badge("badge-recent live-new-badge", "new"));
    meta.push(" · ", el("a", { href: stormUrl(e.storm_id) }, [stormName(e.storm_id)]));
    if (e.component_id) {
      var href = componentUrl(e.storm_id, e.component_id);
      meta.push(" · ", el("a", { href: href || "#" }, [e.component_id]));
    }
    meta.push(" · ", el("a", { href: taskUrl(e.storm_id, e.task_id) }, ["task " + e.task_id]));
    if (e.host || e.port) meta.push(" · ", el("span", { class: "hostport" }, [hostport(e.host, e.port)]));
    return el("li", {
      class: "error-item" + (recent ? " recent" : ""),
      "data-storm-id": e.storm_id,
      "data-task-id": String(e.task_id),
      "data-component-id": e.component_id || "",
      "data-time-secs": String(e.time_secs),
    }, [el("div", { class: "error-meta" }, meta), el("pre", { class: "error-text" }, [e.error])]);
  }

  // -- the error feed ------------------------------------------------------------------------

  var feed = $("error-feed");
  var paused = false;
  var buffered = [];

  function filterValues() {
    var storm = $("filter-storm");
    var component = $("filter-component");
    var q = $("filter-q");
    return {
      storm: storm ? storm.value.trim() : "",
      component: component ? component.value.trim() : "",
      q: q ? q.value.trim() : "",
    };
  }

  function feedFilterQuery() {
    var f = filterValues();
    return "storm=" + seg(f.storm) + "&component=" + seg(f.component) + "&q=" + seg(f.q);
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
    if (!feed) return;
    var f = filterValues();
    var shown = 0;
    Array.prototype.forEach.call(feed.children, function (item) {
      var ok = matches(item, f);
      item.hidden = !ok;
      if (ok) shown += 1;
    });
    var countEl = $("error-count");
    if (countEl) {
      setChildren(countEl, [el("span", { id: "errors-matching" }, [count(shown)]), " error" + (shown === 1 ? "" : "s") + ", newest first."]);
    }
    var none = $("no-errors");
    if (none) none.hidden = shown > 0;
  }

  function feedSnapshot(m) {
    applyStatus(m.zk_connected, m.synced_at, m.as_of);
    if (!feed) return;
    buffered = [];
    showBuffered();
    setChildren(feed, m.errors.map(function (e) {
      return errorItem(e, false);
    }));
    applyFilters();
  }

  function insertError(e) {
    var item = errorItem(e, true);
    item.hidden = !matches(item, filterValues());
    feed.insertBefore(item, feed.firstChild);
    flash(item);
    while (feed.children.length > MAX_FEED) feed.removeChild(feed.lastChild);
  }

  function feedError(e) {
    if (!feed) return;
    if (paused) {
      buffered.push(e);
      showBuffered();
      return;
    }
    insertError(e);
    applyFilters();
  }

  function showBuffered() {
    var note = $("feed-buffered");
    if (!note) return;
    note.hidden = !paused;
    setText(note, buffered.length + " new error" + (buffered.length === 1 ? "" : "s") + " waiting");
  }

  function setupFeed() {
    if (!feed) return;
    var controls = $("feed-controls");
    var pause = $("feed-pause");
    if (controls) controls.hidden = false;
    if (pause) {
      pause.addEventListener("click", function () {
        paused = !paused;
        pause.setAttribute("aria-pressed", paused ? "true" : "false");
        setText(pause, paused ? "Resume" : "Pause");
        if (!paused) {
          buffered.forEach(insertError);
          buffered = [];
          applyFilters();
        }
        showBuffered();
      });
    }
    ["filter-storm", "filter-component", "filter-q"].forEach(function (id) {
      var input = $(id);
      if (input) {
        input.addEventListener("input", applyFilters);
        input.addEventListener("change", applyFilters);
      }
    });
  }

  // -- ages ------------------------------------------------------------------------------------

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
    document.querySelectorAll("[data-age-epoch]").forEach(function (cell) {
      setText(cell, ago(now - Number(cell.getAttribute("data-age-epoch"))));
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
    if (retryAt) updateIndicator();
    if (ticks % 5 === 0) refreshAges();
  }, 1000);

  var wrap = $("live-indicator");
  if (wrap) wrap.hidden = false;
  setupFeed();
  connect();
  window.stormuiLive = {
    state: function () {
      var ind = $("live-status");
      return ind ? ind.getAttribute("data-state") : null;
    },
  };
})();
