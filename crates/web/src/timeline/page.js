"use strict";
(function () {
  var T0 = performance.now();
  var D = JSON.parse(document.getElementById("data").textContent);
  var H = D.hosts, C = D.clusters, R = D.regions, N = H.id.length;
  var RH = 18, AXIS = 26, LW = 250;
  var $ = function (id) { return document.getElementById(id); };
  var el = function (tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  var fmt = function (off) {
    var d = new Date((D.t0 + off) * 1000);
    return d.toISOString().slice(0, 16).replace("T", " ");
  };
  var dur = function (s) {
    var h = Math.floor(s / 3600), m = Math.round((s % 3600) / 60);
    return h ? h + "h" + (m ? m + "m" : "") : m + "m";
  };

  // ---- live state (admin view): actual start/end and state per host
  var live = null, ACT_S = new Float64Array(N).fill(-1), ACT_E = new Float64Array(N).fill(-1);
  var STATE = new Array(N);
  var byId = new Map();
  for (var i = 0; i < N; i++) byId.set(H.id[i], i);

  // ---- groups: region -> cluster (or none) -> hosts sorted by planned start
  var groups = R.map(function () { return new Map(); });
  for (var h = 0; h < N; h++) {
    var g = groups[H.region[h]], c = H.cluster[h];
    if (!g.has(c)) g.set(c, []);
    g.get(c).push(h);
  }
  var order = function (a, b) {
    var sa = H.start[a] < 0 ? 1e15 : H.start[a], sb = H.start[b] < 0 ? 1e15 : H.start[b];
    return sa - sb || (H.id[a] < H.id[b] ? -1 : 1);
  };
  var regionGroups = groups.map(function (m) {
    var list = [];
    m.forEach(function (hosts, c) { hosts.sort(order); list.push({ c: c, hosts: hosts }); });
    list.sort(function (x, y) { return order(x.hosts[0], y.hosts[0]); });
    return list;
  });

  // ---- filters and expansion
  var openRegion = R.map(function () { return true; });
  var openCluster = new Set(), allOpen = false, selected = -1;
  var pass = new Uint8Array(N).fill(1);
  var rows = [];
  function applyFilters() {
    var fr = $("f-region").value, ft = $("f-tenant").value, fk = $("f-kind").value;
    var risky = $("f-risks").checked;
    for (var h = 0; h < N; h++) {
      var c = H.cluster[h], ok = true;
      if (fr !== "" && H.region[h] !== +fr) ok = false;
      else if (ft !== "" && (c < 0 || C.tenant[c] !== +ft)) ok = false;
      else if (fk !== "" && (c < 0 || C.kind[c] !== +fk)) ok = false;
      else if (risky && H.risk[h] === 0 && !isLate(h)) ok = false;
      pass[h] = ok ? 1 : 0;
    }
    buildRows();
  }
  function isLate(h) {
    if (!live || H.end[h] < 0) return false;
    if (ACT_E[h] >= 0) return ACT_E[h] > H.end[h];
    return ACT_S[h] >= 0 ? live.now > H.end[h] : live.now > H.start[h] && H.start[h] >= 0;
  }
  function buildRows() {
    rows = [];
    for (var r = 0; r < R.length; r++) {
      var gs = regionGroups[r].map(function (g) {
        return { c: g.c, hosts: g.hosts.filter(function (h) { return pass[h]; }) };
      }).filter(function (g) { return g.hosts.length; });
      if (!gs.length) continue;
      var all = [];
      gs.forEach(function (g) { all = all.concat(g.hosts); });
      rows.push({ t: 0, r: r, hosts: all });
      if (!openRegion[r]) continue;
      gs.forEach(function (g) {
        rows.push({ t: 1, r: r, c: g.c, hosts: g.hosts });
        if (allOpen || openCluster.has(key(r, g.c)))
          g.hosts.forEach(function (h) { rows.push({ t: 2, r: r, h: h, hosts: [h] }); });
      });
    }
    $("spacer").style.height = rows.length * RH + AXIS + "px";
    document.body.dataset.rows = rows.length;
    draw();
  }
  var key = function (r, c) { return r + ":" + c; };

  // ---- time view
  var span0 = Math.min(0, D.earliest - D.lead), span1 = Math.max(D.end || D.earliest, D.earliest) ;
  R.forEach(function (r) { if (r.end !== null) span1 = Math.max(span1, r.end); });
  for (var k = 0; k < N; k++) if (H.deadline[k] > span1 && H.deadline[k] < span1 + 86400) span1 = H.deadline[k];
  var pad = (span1 - span0) * 0.02 + 60;
  var v0 = span0 - pad, v1 = span1 + pad;
  var cv = $("gantt"), ctx = cv.getContext("2d"), W = 0, HT = 0, dpr = window.devicePixelRatio || 1;
  var X = function (t) { return LW + (t - v0) / (v1 - v0) * (W - LW); };
  function resize() {
    var s = $("scroll");
    W = s.clientWidth; HT = s.clientHeight;
    cv.width = W * dpr; cv.height = HT * dpr;
    cv.style.width = W + "px"; cv.style.height = HT + "px";
    draw();
  }

  var pending = false;
  function draw() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () { pending = false; paint(); });
  }
  function paint() {
    var s = $("scroll"), top = s.scrollTop;
    cv.style.transform = "translateY(" + top + "px)";
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, HT);
    ctx.font = "12px system-ui, sans-serif"; ctx.textBaseline = "middle";
    var first = Math.max(0, Math.floor(top / RH)), last = Math.min(rows.length, first + Math.ceil(HT / RH) + 1);
    ctx.save(); ctx.beginPath(); ctx.rect(0, AXIS, W, HT - AXIS); ctx.clip();
    for (var i = first; i < last; i++) paintRow(rows[i], AXIS + i * RH - top);
    paintTurns();
    ctx.restore();
    paintAxis();
    if (!document.body.dataset.firstDraw) {
      document.body.dataset.firstDraw = Math.round(performance.now());
    }
  }
  function paintRow(row, y) {
    var r = R[row.r];
    if (row.t === 0) { ctx.fillStyle = "#eef1f6"; ctx.fillRect(0, y, W, RH); }
    if (r.windows) {
      ctx.fillStyle = "rgba(60,170,90,0.13)";
      r.windows.forEach(function (w) { var a = Math.max(LW, X(w[0])); ctx.fillRect(a, y, X(w[1]) - a, RH); });
    }
    if (row.t === 0 && r.start !== null) {
      ctx.fillStyle = "#fbe3b0";
      var a = X(r.start - D.lead); ctx.fillRect(Math.max(LW, a), y + 3, X(r.start) - Math.max(LW, a), RH - 6);
    }
    if (row.t === 2) paintHost(row.h, y, 3, RH - 6);
    else if (row.t === 1 && row.hosts.length <= 64) row.hosts.forEach(function (h) { paintHost(h, y, 4, RH - 8, true); });
    else paintDensity(row.hosts, y);
    if (row.t === 2 && row.h === selected) {
      ctx.strokeStyle = "#1d2330"; ctx.lineWidth = 2; ctx.strokeRect(1, y + 1, W - 2, RH - 2); ctx.lineWidth = 1;
    }
    paintLabel(row, y);
    ctx.strokeStyle = "#eceef2"; ctx.beginPath(); ctx.moveTo(0, y + RH - 0.5); ctx.lineTo(W, y + RH - 0.5); ctx.stroke();
  }
  function paintHost(h, y, dy, bh, agg) {
    var s = H.start[h], e = H.end[h];
    if (s >= 0) {
      var a = Math.max(LW, X(s)), b = Math.max(a + 1, X(e));
      ctx.fillStyle = H.risk[h] >= 2 ? "#f2b8b0" : "#9cb8e6"; ctx.fillRect(a, y + dy, b - a, bh);
      if (!agg) { ctx.strokeStyle = H.risk[h] >= 2 ? "#d33b2c" : "#4a74c0"; ctx.strokeRect(a + 0.5, y + dy + 0.5, b - a - 1, bh - 1); }
    }
    if (ACT_S[h] >= 0) {
      var ae = ACT_E[h] >= 0 ? ACT_E[h] : live.now;
      var x0 = Math.max(LW, X(ACT_S[h])), x1 = Math.max(x0 + 1, X(ae));
      ctx.fillStyle = isLate(h) ? "#d33b2c" : "#2f8f5b";
      ctx.fillRect(x0, y + dy + bh * 0.3, x1 - x0, bh * 0.45);
    } else if (isLate(h)) {
      ctx.fillStyle = "#d33b2c"; ctx.fillRect(Math.max(LW, X(s)), y + dy + bh * 0.3, 3, bh * 0.45);
    }
    if (agg) return;
    if (H.deadline[h] >= 0) mark(X(H.deadline[h]), y, "#d33b2c");
    if (H.not_before[h] >= 0) mark(X(H.not_before[h]), y, "#8a46c8");
  }
  function mark(x, y, col) {
    if (x < LW) return;
    ctx.fillStyle = col; ctx.fillRect(x - 1, y + 1, 2, RH - 2);
  }
  function paintDensity(hosts, y) {
    var w = Math.max(1, Math.ceil(W - LW)), acc = new Float32Array(w + 1), bad = new Uint8Array(w + 1), max = 0;
    hosts.forEach(function (h) {
      if (H.start[h] < 0) return;
      var a = Math.max(0, Math.floor(X(H.start[h]) - LW)), b = Math.min(w, Math.max(a + 1, Math.ceil(X(H.end[h]) - LW)));
      if (a >= w || b <= 0) return;
      acc[a] += 1; acc[b] -= 1;
      if (H.risk[h] >= 2 || isLate(h)) for (var x = a; x < b; x++) bad[x] = 1;
    });
    var run = 0, cols = new Float32Array(w);
    for (var x = 0; x < w; x++) { run += acc[x]; cols[x] = run; if (run > max) max = run; }
    for (x = 0; x < w; x++) {
      if (cols[x] <= 0) continue;
      var f = 0.35 + 0.65 * cols[x] / max;
      ctx.fillStyle = bad[x] ? "rgba(211,59,44," + f + ")" : "rgba(74,116,192," + f + ")";
      ctx.fillRect(LW + x, y + 4, 1, RH - 8);
    }
    if (live) {
      var done = 0; hosts.forEach(function (h) { if (ACT_E[h] >= 0) done++; });
      if (done) { ctx.fillStyle = "#2f8f5b"; ctx.fillRect(LW, y + RH - 3, (W - LW) * done / hosts.length, 2); }
    }
  }
  function paintLabel(row, y) {
    ctx.fillStyle = row.t === 0 ? "#eef1f6" : "#fff"; ctx.fillRect(0, y, LW - 2, RH - 1);
    var txt, col = "#1d2330";
    if (row.t === 0) txt = (openRegion[row.r] ? "▾ " : "▸ ") + R[row.r].name + "  (" + row.hosts.length + " hosts)";
    else if (row.t === 1) {
      var open = allOpen || openCluster.has(key(row.r, row.c));
      txt = "   " + (open ? "▾ " : "▸ ") + (row.c < 0 ? "(no cluster)" : C.id[row.c] + " · " + D.kinds[C.kind[row.c]]) + " (" + row.hosts.length + ")";
      if (row.c >= 0 && row.hosts.some(function (h) { return H.risk[h] === 3; })) col = "#b42318";
    } else {
      txt = "        " + H.id[row.h] + (H.start[row.h] < 0 ? "  blocked" : "");
      if (H.risk[row.h] >= 2 || isLate(row.h)) col = "#b42318";
    }
    ctx.font = row.t === 0 ? "600 12px system-ui, sans-serif" : "12px system-ui, sans-serif";
    ctx.fillStyle = col; ctx.fillText(txt.length > 40 ? txt.slice(0, 39) + "…" : txt, 4, y + RH / 2);
  }
  function paintTurns() {
    ctx.setLineDash([4, 3]); ctx.strokeStyle = "#6b7385";
    R.forEach(function (r) {
      if (r.start === null) return;
      var x = X(r.start); if (x < LW) return;
      ctx.beginPath(); ctx.moveTo(x + 0.5, AXIS); ctx.lineTo(x + 0.5, HT); ctx.stroke();
    });
    ctx.setLineDash([]);
    if (live) {
      var x = X(live.now);
      if (x >= LW) { ctx.strokeStyle = "#d33b2c"; ctx.lineWidth = 2; ctx.beginPath(); ctx.moveTo(x, AXIS); ctx.lineTo(x, HT); ctx.stroke(); ctx.lineWidth = 1; }
    }
  }
  function paintAxis() {
    ctx.fillStyle = "#1d2330"; ctx.fillRect(0, 0, W, AXIS);
    ctx.fillStyle = "#fff"; ctx.font = "11px system-ui, sans-serif";
    ctx.fillText("UTC · from " + fmt(Math.round(v0)).slice(0, 10), 6, AXIS / 2);
    var steps = [300, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];
    var per = (v1 - v0) / Math.max(1, (W - LW) / 90), st = steps[steps.length - 1];
    for (var i = 0; i < steps.length; i++) if (steps[i] >= per) { st = steps[i]; break; }
    var t = Math.ceil((v0 + D.t0) / st) * st - D.t0;
    ctx.strokeStyle = "#59627a";
    for (; t < v1; t += st) {
      var x = X(t); if (x < LW) continue;
      ctx.beginPath(); ctx.moveTo(x + 0.5, AXIS - 6); ctx.lineTo(x + 0.5, AXIS); ctx.stroke();
      var lab = fmt(t); lab = st >= 86400 ? lab.slice(5, 10) : lab.slice(11) + (((t + D.t0) % 86400) === 0 ? " " + lab.slice(5, 10) : "");
      ctx.fillText(lab, x + 3, AXIS / 2);
    }
    ctx.fillStyle = "#ffd27a";
    R.forEach(function (r) {
      if (r.start === null) return;
      var x = X(r.start); if (x >= LW) ctx.fillRect(x - 2, AXIS - 5, 4, 5);
    });
  }

  // ---- side panel
  function summary() {
    var s = $("summary"); s.textContent = "";
    var add = function (label, v, cls) {
      var sp = el("span", cls); sp.appendChild(document.createTextNode(label + " ")); sp.appendChild(el("b", "", v));
      s.appendChild(sp); s.appendChild(document.createTextNode("  "));
    };
    add("announce", fmt(0) + " UTC"); add("lead", dur(D.lead));
    add("makespan", dur(D.makespan)); add("lower bound", dur(D.lower_bound));
    add("ratio", D.ratio.toFixed(3), D.ratio > 1.5 ? "bad" : "");
    add("hosts", String(N)); add("regions", R.map(function (r) { return r.name; }).join(" → ") + " (" + D.region_mode + ")");
  }
  function sidePanel() {
    var ol = $("regions");
    R.forEach(function (r) {
      var li = el("li"); li.dataset.region = r.name;
      li.appendChild(el("b", "", r.name));
      var n = 0; regionGroups[R.indexOf(r)].forEach(function (g) { n += g.hosts.length; });
      li.appendChild(el("span", "t", r.start === null ? "  " + n + " hosts · nothing scheduled"
        : "  " + n + " hosts · " + fmt(r.start).slice(5) + " → " + fmt(r.end).slice(5) + " · announce by " + fmt(r.announce_by).slice(5)));
      ol.appendChild(li);
    });
    var cnt = { blocked: 0, late: 0, warning: 0 };
    D.risks.forEach(function (k) { cnt[k.severity]++; });
    $("riskcount").textContent = cnt.blocked + " blocked, " + cnt.late + " late, " + cnt.warning + " warnings";
    var ul = $("risks");
    D.risks.forEach(function (k) {
      var li = el("li"); li.dataset.severity = k.severity; li.dataset.code = k.code;
      if (k.cluster) li.dataset.cluster = k.cluster;
      li.appendChild(el("span", "sev", k.severity)); li.appendChild(el("span", "code", k.code));
      li.appendChild(el("div", "reason", k.reason));
      li.appendChild(el("div", "remedy", k.remedy));
      if (k.count) li.appendChild(el("div", "hosts", k.count + " host(s): " + k.hosts.slice(0, 12).join(", ") + (k.count > 12 ? " …" : "")));
      li.addEventListener("click", function () { if (k.hosts.length) find(k.hosts[0]); });
      ul.appendChild(li);
    });
  }
  function options() {
    var fill = function (id, names) {
      var s = $(id);
      names.forEach(function (n, i) { var o = el("option", "", n); o.value = i; s.appendChild(o); });
    };
    fill("f-region", R.map(function (r) { return r.name; }));
    fill("f-tenant", D.tenants);
    fill("f-kind", D.kinds);
  }

  // ---- search and selection
  function find(q) {
    q = q.trim(); if (!q) return false;
    var h = byId.has(q) ? byId.get(q) : -1;
    if (h < 0) for (var i = 0; i < N; i++) if (H.id[i].indexOf(q) >= 0) { h = i; break; }
    if (h < 0) { showInfo(-1, q); return false; }
    if (!pass[h]) { ["f-region", "f-tenant", "f-kind"].forEach(function (id) { $(id).value = ""; }); $("f-risks").checked = false; applyFilters(); }
    openRegion[H.region[h]] = true; openCluster.add(key(H.region[h], H.cluster[h]));
    selected = h; buildRows();
    for (var j = 0; j < rows.length; j++) if (rows[j].t === 2 && rows[j].h === h) {
      $("scroll").scrollTop = Math.max(0, j * RH - 4 * RH); break;
    }
    showInfo(h); draw();
    return true;
  }
  function showInfo(h, q) {
    var b = $("hostinfo"); b.hidden = false; b.textContent = "";
    if (h < 0) { b.dataset.host = ""; b.className = ""; b.appendChild(el("div", "", "no host matches “" + q + "”")); return; }
    b.dataset.host = H.id[h];
    b.className = isLate(h) ? "late" : "";
    b.appendChild(el("b", "", H.id[h]));
    var line = function (t) { b.appendChild(el("div", "", t)); };
    line("region " + R[H.region[h]].name + (H.cluster[h] >= 0 ? " · cluster " + C.id[H.cluster[h]] + " (" + D.kinds[C.kind[H.cluster[h]]] + ", at most " + C.limit[H.cluster[h]] + " of " + C.members[H.cluster[h]] + " out)" : ""));
    line(H.start[h] < 0 ? "not scheduled (blocked)" : "planned " + fmt(H.start[h]) + " → " + fmt(H.end[h]).slice(11) + " UTC, wave " + (H.wave[h] + 1));
    if (H.deadline[h] >= 0) line("deadline " + fmt(H.deadline[h]) + " UTC");
    if (H.not_before[h] >= 0) line("provider NotBefore " + fmt(H.not_before[h]) + " UTC");
    if (ACT_S[h] >= 0) line("actual " + fmt(ACT_S[h]) + " → " + (ACT_E[h] >= 0 ? fmt(ACT_E[h]).slice(11) : "running") + (STATE[h] ? " · " + STATE[h] : ""));
    if (isLate(h)) b.appendChild(el("div", "lateflag", "LATE"));
  }
  cv.addEventListener("click", function (ev) {
    var rc = cv.getBoundingClientRect(), y = ev.clientY - rc.top;
    if (y < AXIS) return;
    var i = Math.floor((y - AXIS + $("scroll").scrollTop) / RH), row = rows[i];
    if (!row) return;
    if (row.t === 0) openRegion[row.r] = !openRegion[row.r];
    else if (row.t === 1) { var k = key(row.r, row.c); if (openCluster.has(k)) openCluster.delete(k); else openCluster.add(k); }
    else { selected = row.h; showInfo(row.h); }
    buildRows();
  });

  // ---- zoom and pan
  function zoom(f, at) {
    var c = at === undefined ? (v0 + v1) / 2 : at;
    v0 = c - (c - v0) * f; v1 = c + (v1 - c) * f; draw();
  }
  $("z-in").onclick = function () { zoom(0.5); };
  $("z-out").onclick = function () { zoom(2); };
  $("z-fit").onclick = function () { v0 = span0 - pad; v1 = span1 + pad; draw(); };
  $("expand").onclick = function () { allOpen = !allOpen; this.textContent = allOpen ? "close clusters" : "open clusters"; buildRows(); };
  $("scroll").addEventListener("scroll", draw, { passive: true });
  $("scroll").addEventListener("wheel", function (ev) {
    if (ev.ctrlKey) { ev.preventDefault(); var rc = cv.getBoundingClientRect(); zoom(ev.deltaY > 0 ? 1.25 : 0.8, v0 + (ev.clientX - rc.left - LW) / (W - LW) * (v1 - v0)); }
    else if (ev.shiftKey || Math.abs(ev.deltaX) > Math.abs(ev.deltaY)) { ev.preventDefault(); var d = (ev.deltaX || ev.deltaY) / (W - LW) * (v1 - v0); v0 += d; v1 += d; draw(); }
  }, { passive: false });
  ["f-region", "f-tenant", "f-kind", "f-risks"].forEach(function (id) { $(id).addEventListener("change", applyFilters); });
  $("f-host").addEventListener("keydown", function (ev) { if (ev.key === "Enter") find(this.value); });
  window.addEventListener("resize", resize);

  // ---- live polling (admin view)
  function applyLive(j) {
    live = j; $("live").hidden = false;
    ACT_S.fill(-1); ACT_E.fill(-1);
    j.hosts.forEach(function (x) {
      var h = byId.get(x.host); if (h === undefined) return;
      ACT_S[h] = x.start; ACT_E[h] = x.end === null ? -1 : x.end; STATE[h] = x.state;
    });
    $("runstate").textContent = "run " + j.run + " · " + j.status + " · now " + fmt(j.now) + " UTC · " + j.done + " of " + N + " done";
    var list = function (id, items, text) {
      var ul = $(id); ul.textContent = "";
      items.slice(0, 100).forEach(function (x) { var li = el("li", "", text(x)); li.dataset.host = x.host || ""; ul.appendChild(li); });
      if (items.length > 100) ul.appendChild(el("li", "", "… +" + (items.length - 100)));
    };
    var late = []; for (var h = 0; h < N; h++) if (isLate(h)) late.push({ host: H.id[h], h: h });
    document.body.dataset.late = late.length;
    document.body.dataset.done = j.done;
    list("late", late, function (x) { return x.host + " (planned end " + fmt(H.end[x.h]).slice(11) + ")"; });
    list("missing", j.missing, function (x) { return x.host + " · " + x.state; });
    var bl = $("budgets"); bl.textContent = "";
    j.budgets.forEach(function (b) {
      var li = el("li", "", b.cluster + ": " + b.out + " of " + b.limit + " out"); li.dataset.cluster = b.cluster;
      var bar = el("span", "bar"); bar.style.width = Math.round(60 * b.out / Math.max(1, b.limit)) + "px"; li.appendChild(bar);
      bl.appendChild(li);
    });
    $("notify").textContent = j.notify;
    if (selected >= 0) showInfo(selected);
    if ($("f-risks").checked) applyFilters(); else draw();
  }
  function poll() {
    var url = document.body.dataset.poll;
    fetch(url, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
      if (!r.ok) throw new Error(r.status); return r.json();
    }).then(applyLive).catch(function (e) { $("runstate").textContent = "refresh failed: " + e.message; })
      .finally(function () { setTimeout(poll, 1500); });
  }

  summary(); options(); sidePanel(); resize(); buildRows();
  window.__timeline = { find: find, rows: function () { return rows.length; }, parsedMs: Math.round(performance.now() - T0) };
  requestAnimationFrame(function () {
    document.body.dataset.ready = Math.round(performance.now());
  });
  if (document.body.dataset.poll) poll();
})();
