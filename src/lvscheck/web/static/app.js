// lvscheck status page: one EventSource ("events"); a snapshot builds the tables, deltas patch rows.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const SPARK = "▁▂▃▄▅▆▇█";
  const KEEP = 24;
  let reals = [];   // flat, in snapshot order: {r: real fields, pool: index, tr, cells}
  let pools = [];   // {v: virtual fields, el, flags}
  let doc = null;
  let skew = 0;     // server clock minus ours (s)
  // Only pools on (or near) the screen are written to the DOM; the others are marked dirty and
  // redrawn when they scroll into view: 10,000 reals cost what the visible rows cost.
  const visible = new Set();
  const seen = new IntersectionObserver((entries) => {
    for (const e of entries) {
      const p = +e.target.dataset.p;
      if (e.isIntersecting) { visible.add(p); flushPool(p); } else visible.delete(p);
    }
  }, { rootMargin: "300px 0px" });

  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g,
      (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }
  function now() { return Date.now() / 1000 + skew; }
  function hhmmss(t) {
    const d = new Date(t * 1000);
    return d.toTimeString().slice(0, 8);
  }
  function age(t) {
    if (t == null) return "–";
    const s = Math.max(0, now() - t);
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + String(Math.floor(s % 60)).padStart(2, "0");
    if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0");
    return Math.floor(s / 86400) + "d";
  }
  function ms(x) { return x == null ? "–" : (x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0)) + " ms"; }
  function spark(lat) {
    if (!lat || !lat.length) return "";
    let max = 0;
    for (const x of lat) if (x > max) max = x;
    if (max <= 0) max = 1;
    let out = "";
    for (const x of lat) out += SPARK[Math.min(7, Math.floor((x / max) * 7.999))];
    return out;
  }
  function timeline(tr) {
    if (!tr || !tr.length) return "";
    return tr.map((t) => {
      const mark = t[2] === "up" ? "▲" : t[2] === "down" ? "▼" : "●";
      return `<span class="to-${esc(t[2])}" title="${esc(hhmmss(t[0]) + " " + t[1] + " → " + t[2] + ": " + t[3])}">${mark}</span>`;
    }).join("");
  }
  function stateOf(r) {
    if (r.maintenance) return ["maint", "maint"];
    let text = r.state, cls = r.state;
    if (r.streak) { text += " " + r.streak + "×"; cls = "soft"; }
    return [text, cls];
  }
  function fine(r) {
    return r.state === "up" && !r.streak && !r.drained && !r.maintenance;
  }
  function reasonOf(r) {
    const t = r.reason || (r.fixed ? "fixed " + r.fixed : "");
    if (r.maintenance) return "in maintenance (" + r.maintenance + ")" + (t ? "; last check: " + t : "");
    if (r.drained) return "drained by an operator" + (t ? "; last check: " + t : "");
    return t;
  }

  function rowHTML(r, i) {
    const [st, cls] = stateOf(r);
    const tags = r.drained ? '<span class="tag">DRAINED</span>' : "";
    const kw = r.kernel_weight == null ? "–" : r.kernel_weight;
    const last = r.last_transition;
    return `<tr data-i="${i}" class="${fine(r) ? "fine" : ""}">` +
      `<td class="real">${esc(r.real)}</td>` +
      `<td><span class="st ${esc(cls)}">${esc(st)}</span>${tags}</td>` +
      `<td class="num c-cfg">${esc(r.configured_weight)}</td>` +
      `<td class="num kw">${esc(kw)}</td>` +
      `<td class="num age">${age(r.last_check)}</td>` +
      `<td class="num lat c-lat">${ms(r.latency_ms)}</td>` +
      `<td class="spark" title="last ${r.latencies_ms.length} checks">${spark(r.latencies_ms)}</td>` +
      `<td class="c-changed">${last == null ? "–" : hhmmss(last)}</td>` +
      `<td class="tl c-tl">${timeline(r.transitions)}</td>` +
      `<td class="reason">${esc(reasonOf(r))}</td></tr>`;
  }

  function poolFlags(v) {
    return [
      ["GUARDED", v.guarded, "most checks fail for a reason on the director's side: no real is taken out"],
      ["FALLBACK ACTIVE", v.fallback_active, "no real up: the fallback server " + (v.fallback || "") + " takes the traffic"],
      ["NOT IN KERNEL", !v.in_kernel, "the virtual service is not in the IPVS table"],
    ];
  }

  function build(d) {
    doc = d;
    skew = d.now ? d.now - Date.now() / 1000 : 0;
    $("where").textContent = d.config || "";
    document.title = "lvscheck " + (d.config || "");
    reals = []; pools = [];
    const html = [];
    d.virtuals.forEach((v, p) => {
      const idx = [];
      const flags = poolFlags(v).map(([name, on, why]) =>
        `<span class="flag" title="${esc(why)}"${on ? "" : " hidden"}>${name}</span>`).join("");
      html.push(`<section class="pool" data-p="${p}"><h2>${esc(v.virtual)} <small>${esc(v.service)} ${esc(v.scheduler)}` +
        `${v.quiescent ? " quiescent" : ""}</small> <small class="count"></small>${flags}</h2>` +
        `<div class="wrap"><table><thead><tr><th>real</th><th>state</th><th class="num c-cfg">weight</th>` +
        `<th class="num">kernel</th><th class="num">last check</th><th class="num c-lat">latency</th>` +
        `<th>history</th><th class="c-changed">changed</th><th class="c-tl">timeline</th><th>reason</th></tr></thead><tbody>`);
      for (const r of v.reals) {
        r.latencies_ms = r.latencies_ms || [];
        html.push(rowHTML(r, reals.length));
        idx.push(reals.length);
        reals.push({ r: r, pool: p, tr: null, dirty: false, key: "" });
      }
      html.push("</tbody></table></div></section>");
      pools.push({ v: v, el: null, idx: idx });
    });
    const main = $("pools");
    main.innerHTML = html.length ? html.join("") : '<p class="hint">no virtual services</p>';
    main.querySelectorAll("tr[data-i]").forEach((tr) => { reals[+tr.dataset.i].tr = tr; });
    seen.disconnect();
    visible.clear();
    main.querySelectorAll("section.pool").forEach((el) => { pools[+el.dataset.p].el = el; seen.observe(el); });
    pools.forEach((_, p) => updatePool(p));
    health(d);
    document.body.classList.toggle("actions", !!d.actions);
    $("token").hidden = !d.actions;
    applyFilter();
    summary();
    document.body.dataset.rendered = String(performance.now());
    document.body.dataset.snapshots = String(+(document.body.dataset.snapshots || 0) + 1);
  }

  function updateRow(x) {
    const r = x.r, tr = x.tr, c = tr.cells;
    x.dirty = false;
    const [st, cls] = stateOf(r);
    const key = st + "|" + r.drained + "|" + r.maintenance + "|" + r.transitions_total;
    if (key !== x.key) {
      x.key = key;
      const tags = r.drained ? '<span class="tag">DRAINED</span>' : "";
      c[1].innerHTML = `<span class="st ${esc(cls)}">${esc(st)}</span>${tags}`;
      c[8].innerHTML = timeline(r.transitions);
    }
    c[3].textContent = r.kernel_weight == null ? "–" : r.kernel_weight;
    c[4].textContent = age(r.last_check);
    c[5].textContent = ms(r.latency_ms);
    c[6].textContent = spark(r.latencies_ms);
    c[7].textContent = r.last_transition == null ? "–" : hhmmss(r.last_transition);
    c[9].textContent = reasonOf(r);
    tr.classList.toggle("fine", fine(r));
  }

  function updatePool(p) {
    const x = pools[p];
    if (!x.el) return;
    const flags = x.el.querySelectorAll(".flag");
    poolFlags(x.v).forEach(([, on], k) => { flags[k].hidden = !on; });
    let up = 0, n = 0, ok = true;
    for (const r of x.v.reals) { n++; if (r.state === "up" && !r.maintenance) up++; if (!fine(r)) ok = false; }
    x.el.querySelector(".count").textContent = `${up}/${n} up`;
    x.el.classList.toggle("fine", ok && x.v.in_kernel && !x.v.guarded && !x.v.fallback_active);
  }

  function health(h) {
    const lag = h.start_lag || { p50: 0, p99: 0 };
    const lr = h.last_reload;
    let reload = "none since start";
    if (lr) reload = lr.ok ? `ok ${hhmmss(lr.time)} (${esc(lr.why)})`
      : `<span class="bad" title="${esc((lr.problems || []).join("\n"))}">REFUSED ${hhmmss(lr.time)}: ${esc((lr.problems || [])[0] || "")}</span>`;
    const errs = h.ipvs_write_errors || 0;
    const d = doc || {};
    $("health").innerHTML =
      `<span>daemon <b>${esc(h.state)}</b>${d.pid ? " pid " + d.pid : ""}${d.version ? " · v" + esc(d.version) : ""}</span>` +
      `<span>ipvs <b>${esc(d.ipvs || "")}</b></span>` +
      `<span>checks <b>${esc(h.checks)}</b></span>` +
      `<span>start lag p50 <b>${(lag.p50 * 1000).toFixed(1)} ms</b> p99 <b>${(lag.p99 * 1000).toFixed(1)} ms</b></span>` +
      `<span>IPVS write errors <b class="${errs ? "bad" : ""}">${errs}</b></span>` +
      `<span>config <b>${esc(d.config || "")}</b></span>` +
      `<span>last reload ${reload}</span>`;
  }

  function summary() {
    let up = 0, down = 0, unknown = 0, drained = 0, maint = 0;
    for (const x of reals) {
      const r = x.r;
      if (r.maintenance) maint++; else if (r.state === "up") up++; else if (r.state === "down") down++; else unknown++;
      if (r.drained) drained++;
    }
    $("summary").textContent = `${reals.length} reals: ${up} up, ${down} down` +
      (unknown ? `, ${unknown} unknown` : "") + (drained ? `, ${drained} drained` : "") + (maint ? `, ${maint} in maintenance` : "");
  }

  function apply(delta) {
    if (delta.now) skew = delta.now - Date.now() / 1000;
    const touched = new Set();
    for (const row of delta.rows) {
      const x = reals[row[0]];
      if (!x) continue;
      const r = x.r;
      const short = row.length === 4;  // only new checks: [index, seq, last_check, latencies]
      const seq = short ? row[1] : row[4], lat = short ? row[3] : row[6];
      const from = seq - lat.length;
      const known = r.seq || 0;
      for (let k = 0; k < lat.length; k++) if (from + k + 1 > known) r.latencies_ms.push(lat[k]);
      if (r.latencies_ms.length > KEEP) r.latencies_ms.splice(0, r.latencies_ms.length - KEEP);
      if (lat.length) r.latency_ms = lat[lat.length - 1];
      r.seq = seq;
      r.last_check = short ? row[2] : row[5];
      if (!short) {
        r.state = row[1]; r.streak = row[2]; r.kernel_weight = row[3];
        if (row[7] != null) r.reason = row[7];
        r.result = row[8]; r.drained = row[9]; r.maintenance = row[10]; r.transitions_total = row[11];
        if (row[12]) {
          r.transitions = row[12];
          r.last_transition = row[12].length ? row[12][row[12].length - 1][0] : null;
        }
      }
      if (x.tr && visible.has(x.pool)) updateRow(x); else x.dirty = true;
      touched.add(x.pool);
    }
    delta.pools.forEach((f, p) => {
      const x = pools[p];
      if (!x) return;
      if (x.v.guarded !== f[0] || x.v.fallback_active !== f[1] || x.v.in_kernel !== f[2]) {
        x.v.guarded = f[0]; x.v.fallback_active = f[1]; x.v.in_kernel = f[2];
        touched.add(p);
      }
    });
    touched.forEach(updatePool);
    health(delta.health);
    if (delta.rows.length) { summary(); if (filtering) applyFilter(); }
    document.body.dataset.updates = String(+(document.body.dataset.updates || 0) + 1);
  }

  function flushPool(p) {
    const x = pools[p];
    if (!x) return;
    for (const i of x.idx) {
      const y = reals[i];
      if (!y.tr) continue;
      if (y.dirty) updateRow(y); else y.tr.cells[4].textContent = age(y.r.last_check);
    }
  }

  function tickAges() {
    for (const p of visible) {
      for (const i of pools[p].idx) {
        const x = reals[i];
        if (x.tr && !x.tr.hidden) x.tr.cells[4].textContent = age(x.r.last_check);
      }
    }
  }

  let filtering = false;
  function applyFilter() {
    const q = $("filter").value.trim().toLowerCase();
    filtering = q !== "";
    for (const x of reals) {
      if (!x.tr) continue;
      const hide = q !== "" && !(x.r.real + " " + (x.r.reason || "")).toLowerCase().includes(q);
      if (x.tr.hidden !== hide) x.tr.hidden = hide;
    }
  }

  function connect() {
    const conn = $("conn");
    const es = new EventSource("events");
    es.addEventListener("snapshot", (e) => {
      document.body.dataset.snapshotAt = String(performance.now());
      build(JSON.parse(e.data));
      conn.textContent = "live"; conn.className = "conn live";
    });
    es.addEventListener("delta", (e) => { apply(JSON.parse(e.data)); conn.textContent = "live"; conn.className = "conn live"; });
    es.onerror = () => { conn.textContent = "disconnected: retrying"; conn.className = "conn lost"; };
  }

  // actions (only when the daemon has --http-tokens): click a real, pick what to do
  let target = null;
  function toast(text, bad) {
    const t = $("toast");
    t.textContent = text; t.className = "toast" + (bad ? " bad" : ""); t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
  }
  $("pools").addEventListener("click", (e) => {
    if (!doc || !doc.actions) return;
    const td = e.target.closest("td.real");
    if (!td) return;
    const x = reals[+td.parentElement.dataset.i];
    target = { real: x.r.real, virtual: pools[x.pool].v.virtual };
    $("act-real").textContent = target.real;
    $("act-virtual").textContent = "in " + target.virtual;
    $("act").showModal();
  });
  $("act").addEventListener("close", async () => {
    const what = $("act").returnValue;
    if (!target || !what || what === "cancel") return;
    const body = what.startsWith("maint")
      ? { action: "maintenance", on: what === "maint-on", real: target.real }
      : { action: what, virtual: target.virtual, real: target.real };
    try {
      const resp = await fetch("action", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Authorization": "Bearer " + $("token").value },
        body: JSON.stringify(body),
      });
      const text = await resp.text();
      let answer = {};
      try { answer = JSON.parse(text); } catch (err) { answer = { error: text.trim() }; }
      if (resp.ok) toast(`${what} ${target.real}: done` + (answer.changed ? "" : " (it already was)"), false);
      else toast(`${what} ${target.real}: ${resp.status} ${answer.error || ""}`, true);
    } catch (err) {
      toast(`${what}: ${err}`, true);
    }
  });

  $("problems").addEventListener("change", (e) => document.body.classList.toggle("problems-only", e.target.checked));
  $("filter").addEventListener("input", applyFilter);
  setInterval(tickAges, 1000);
  connect();
})();
