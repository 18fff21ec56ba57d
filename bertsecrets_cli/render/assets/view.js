/* bertsecrets view: the page's whole program, hand-written, canvas-based, no dependencies, no network.
 * Data: the application/json element #bertsecrets-data (written by bertsecrets_cli/render/html.py).
 * Maps of one example are decoded from base64 only when that example is shown (a few are cached).
 * window.bertsecretsView exposes state, layout and timings for tests and benchmarks. */
(function () {
  "use strict";
  var t0 = performance.now();
  var D = JSON.parse(document.getElementById("bertsecrets-data").textContent);
  var L = D.layers, H = D.heads;
  var timings = { parse_ms: performance.now() - t0 };
  var S = { ex: 0, layer: 0, head: 0, units: "tokens", links: "all", hover: null, grid: 0 };
  var cache = [];  // [{key, value}] most recent last
  var drawn = null, lay = null;
  // the category colours of the figures and the terminal (render/colours.py), sent with the data
  var PALETTE = D.palette || ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  var THRESHOLD = 0.02;  // lines below this weight are not drawn (invisible anyway)

  function el(tag, attrs, parent) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === "text") e.textContent = attrs[k]; else if (k === "cls") e.className = attrs[k]; else e.setAttribute(k, attrs[k]);
    }
    if (parent) parent.appendChild(e);
    return e;
  }
  function headColour(h) { return "hsl(" + Math.round(h * 360 / H) + ",68%,42%)"; }
  function headName(l, h) { return "L" + (l + 1) + "H" + (h + 1); }
  function fmt(v) { return v === null || v === undefined ? "n/a" : (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toFixed(3)); }

  // ---------------------------------------------------------------- decoding
  var HALF = (function () {
    var t = new Float32Array(65536);
    for (var h = 0; h < 65536; h++) {
      var s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, f = h & 1023;
      t[h] = e === 0 ? s * f * 5.960464477539063e-8 : e === 31 ? (f ? NaN : s * Infinity) : s * (1 + f / 1024) * Math.pow(2, e - 15);
    }
    return t;
  })();
  function bytes(b64) {
    if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(b64);  // native in current browsers
    var bin = atob(b64), n = bin.length, u8 = new Uint8Array(n);
    for (var i = 0; i < n; i++) u8[i] = bin.charCodeAt(i);
    return u8;
  }
  function remember(key, make) {
    for (var i = 0; i < cache.length; i++) if (cache[i].key === key) { var c = cache.splice(i, 1)[0]; cache.push(c); return c.value; }
    var v = make();
    cache.push({ key: key, value: v });
    if (cache.length > 4) cache.shift();
    return v;
  }
  function tokenMaps(pos) {
    return remember("t" + pos, function () {
      var u8 = bytes(D.examples[pos].maps), out;
      if (D.encoding === "uint8") { out = new Float32Array(u8.length); for (var i = 0; i < u8.length; i++) out[i] = u8[i] / 255; }
      else { var u16 = new Uint16Array(u8.buffer, 0, u8.length >> 1); out = new Float32Array(u16.length); for (var j = 0; j < u16.length; j++) out[j] = HALF[u16[j]]; }
      return out;
    });
  }
  // word-level maps: a word attends with the mean over its query pieces of the summed attention to the key pieces
  function wordMaps(pos) {
    return remember("w" + pos, function () {
      var ex = D.examples[pos], T = ex.tokens.length, w = ex.words, W = ex.word_texts.length, A = tokenMaps(pos);
      var size = new Float32Array(W), out = new Float32Array(L * H * W * W);
      for (var t = 0; t < T; t++) if (w[t] >= 0) size[w[t]] += 1;  // -1: a piece of no word (whitespace only)
      for (var m = 0; m < L * H; m++) {
        var a = m * T * T, b = m * W * W;
        for (var q = 0; q < T; q++) {
          if (w[q] < 0) continue;
          var row = b + w[q] * W, inv = 1 / size[w[q]];
          for (var k = 0; k < T; k++) if (w[k] >= 0) out[row + w[k]] += A[a + q * T + k] * inv;
        }
      }
      return out;
    });
  }
  // maps whose rows are not distributions (norms, ...) are drawn relative to each map's peak: value / divisor
  function divisor(l, h) {
    if (D.distribution) return 1;
    var p = D.examples[S.ex].peak[l][h];
    return p > 0 ? p : Infinity;
  }
  // what is shown now: labels, specials and the [L*H*n*n] matrix
  function current() {
    var ex = D.examples[S.ex];
    if (S.units === "words") {
      return { n: ex.word_texts.length, labels: ex.word_texts, special: ex.word_special, segment: ex.word_segment, mat: wordMaps(S.ex) };
    }
    return { n: ex.tokens.length, labels: ex.tokens, special: ex.special, segment: ex.segment, mat: tokenMaps(S.ex) };
  }

  // ---------------------------------------------------------------- page skeleton
  var body = document.body;
  var header = el("header", {}, body);
  el("h1", { text: D.title }, header);
  var side = D.sides.map(function (s) { return s.kind + " " + s.store + " (" + s.matched + " of the shown examples matched)"; }).join("; ");
  el("div", { cls: "meta", text: (D.model || "model") + " \u00b7 " + L + " layers \u00d7 " + H + " heads \u00b7 " + D.examples.length + " of " + D.n_store_examples +
    " examples of " + D.store + (D.task ? " (" + D.task + ")" : "") + " \u00b7 " + D.quantity + " maps as " + D.encoding + " \u00b7 this file: " + String(D.size).trim() + (side ? " \u00b7 with " + side : "") }, header);
  var controls = el("div", { cls: "controls" }, body);
  var exLab = el("label", { text: "Example" }, controls), exSel = el("select", { id: "example" }, exLab);
  D.examples.forEach(function (ex, i) {
    var txt = (ex.text_a + (ex.text_b ? " | " + ex.text_b : "")).slice(0, 70);
    el("option", { value: String(i), text: "#" + ex.index + " " + ex.id + ": " + txt }, exSel);
  });
  var lLab = el("label", { text: "Layer" }, controls), layerSel = el("select", { id: "layer" }, lLab);
  for (var l = 0; l < L; l++) el("option", { value: String(l), text: "L" + (l + 1) }, layerSel);
  var hLab = el("label", { text: "Head" }, controls), headSel = el("select", { id: "head" }, hLab);
  el("option", { value: "-1", text: "all" }, headSel);
  for (var h = 0; h < H; h++) el("option", { value: String(h), text: "H" + (h + 1) }, headSel);
  var uLab = el("label", { text: "Units" }, controls), unitSel = el("select", { id: "units" }, uLab);
  el("option", { value: "tokens", text: "tokens" }, unitSel);
  el("option", { value: "words", text: "words", title: "a word's attention: mean over its query pieces, sum over its key pieces" }, unitSel);
  var kLab = el("label", { text: "Links" }, controls), linkSel = el("select", { id: "links" }, kLab);
  [["all", "all"], ["within", "within each sentence"], ["ab", "sentence A \u2192 B"], ["ba", "sentence B \u2192 A"]].forEach(function (o) { el("option", { value: o[0], text: o[1] }, linkSel); });
  var sentence = el("div", { id: "sentence" }, body);
  var main = el("main", {}, body);

  var hvSec = el("section", { id: "headview" }, main);
  var hvTitle = el("h2", { text: "Head view" }, hvSec);
  var headsRow = el("div", { id: "heads-row" }, hvSec);
  var allBtn = el("button", { cls: "all", text: "all", title: "every head of the layer, one colour each" }, headsRow);
  allBtn.addEventListener("click", function () { select({ head: -1 }); });
  var headBtns = [];
  for (var hb = 0; hb < H; hb++) (function (h) {
    var b = el("button", { text: String(h + 1), title: "head " + (h + 1) }, headsRow);
    b.style.background = headColour(h);
    b.addEventListener("click", function () { select({ head: h }); });
    headBtns.push(b);
  })(hb);
  var hvPng = el("button", { id: "headview-png", cls: "all", text: "PNG", title: "save the head view as a PNG image" }, headsRow);
  hvPng.addEventListener("click", function () { savePng(hv, "headview"); });
  var hvWrap = el("div", { id: "headview-wrap" }, hvSec);
  var hv = el("canvas", { id: "headview-canvas", tabindex: "0" }, hvWrap);
  var topLinks = el("div", { id: "top-links", cls: "legend" }, hvSec);
  el("div", { cls: "legend", text: "Left: each token attending (query); right: the tokens it attends to (keys). Line opacity = " +
    (D.distribution ? "attention weight" : D.quantity + " value relative to the map's largest") + " (below " + THRESHOLD + " not drawn). Hover a token to see only its links." }, hvSec);

  var mvSec = el("section", { id: "modelview" }, main);
  var mvTitle = el("h2", { text: "Model view" }, mvSec);
  var grid = el("div", { id: "modelgrid" }, mvSec);
  var zoomTitle = el("div", { id: "zoom-title" }, mvSec);
  var zoom = el("canvas", { id: "zoom-canvas" }, mvSec);
  var zoomPng = el("button", { id: "zoom-png", text: "Save this map as PNG" }, mvSec);
  zoomPng.addEventListener("click", function () { savePng(zoom, "map"); });
  var mvLegend = el("div", { cls: "legend" }, mvSec);

  var hqSec = null, hqSel = null, hqCanvas = null, hqDesc = null, hqLegend = null;
  if (D.grids.length) {
    hqSec = el("section", { id: "headgrids" }, main);
    el("h2", { text: "Per-head results" }, hqSec);
    var hqLab = el("label", { text: "Quantity " }, hqSec);
    hqSel = el("select", { id: "quantity" }, hqLab);
    var groups = {};
    D.grids.forEach(function (g, i) {
      if (!groups[g.source]) groups[g.source] = el("optgroup", { label: g.source + " store" }, hqSel);
      el("option", { value: String(i), text: g.name }, groups[g.source]);
    });
    var prefer = ["pattern_majority", "cosine", "ablation_delta"];
    for (var pi = 0; pi < prefer.length && !S.gridSet; pi++) D.grids.forEach(function (g, i) { if (!S.gridSet && g.name === prefer[pi]) { S.grid = i; S.gridSet = true; } });
    hqSel.value = String(S.grid);
    hqDesc = el("div", { id: "quantity-desc" }, hqSec);
    hqCanvas = el("canvas", { id: "headgrid-canvas" }, hqSec);
    hqLegend = el("div", { cls: "legend" }, hqSec);
  }
  var foot = el("footer", {}, body);
  foot.textContent = "Written by " + D.tool + ". Self-contained: opens from disk without network access. Click a map or a grid cell to select that head; the address (#ex=..&layer=..&head=..) links to the selection.";
  var tip = el("div", { id: "tip" }, body);

  function savePng(canvas, what) {
    var a = document.createElement("a"), h = S.head >= 0 ? "H" + (S.head + 1) : "all";
    a.download = what + "-ex" + D.examples[S.ex].index + "-L" + (S.layer + 1) + h + (S.units === "words" ? "-words" : "") + ".png";
    a.href = canvas.toDataURL("image/png");
    document.body.appendChild(a); a.click(); a.remove();
  }
  function sizeCanvas(c, w, h) {
    var r = window.devicePixelRatio || 1;
    c.width = Math.round(w * r); c.height = Math.round(h * r);
    c.style.width = w + "px"; c.style.height = h + "px";
    var ctx = c.getContext("2d");
    ctx.setTransform(r, 0, 0, r, 0, 0);
    return ctx;
  }
  function showTip(e, text) { tip.textContent = text; tip.style.display = "block"; tip.style.left = (e.clientX + 12) + "px"; tip.style.top = (e.clientY + 12) + "px"; }
  function hideTip() { tip.style.display = "none"; }

  // ---------------------------------------------------------------- head view
  function drawHeadView() {
    var V = current(), n = V.n, mat = V.mat, ctx = hv.getContext("2d");
    var rowH = n <= 60 ? 18 : n <= 160 ? 13 : 10, fontPx = rowH >= 18 ? 13 : rowH >= 13 ? 11 : 9;
    ctx.font = fontPx + "px system-ui, sans-serif";
    var maxW = 0;
    for (var i = 0; i < n; i++) maxW = Math.max(maxW, ctx.measureText(V.labels[i]).width);
    var colW = Math.min(170, Math.ceil(maxW) + 10), gap = 240, top = 6;
    var x0 = colW + 6, x1 = x0 + gap, width = x1 + 6 + colW, height = top + n * rowH + 6;
    ctx = sizeCanvas(hv, width, height);
    ctx.font = fontPx + "px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    var y = function (t) { return top + t * rowH + rowH / 2; };
    lay = { x0: x0, x1: x1, top: top, rowH: rowH, n: n, colW: colW, width: width, height: height };
    var heads = S.head >= 0 ? [S.head] : Array.from({ length: H }, function (_, h) { return h; });
    var hover = S.hover, lines = 0, mass = 0, best = null, digest = 0, top5 = [];
    var weightOf = new Float32Array(n);  // shading of the other side's tokens under the hovered token
    for (var hi = 0; hi < heads.length; hi++) {
      var h = heads[hi], base = (S.layer * H + h) * n * n, dv = S.units === "words" && !D.distribution ? wordPeak(mat, base, n) : divisor(S.layer, h);
      var buckets = [];
      for (var b = 0; b < 20; b++) buckets.push([]);
      for (var q = 0; q < n; q++) {
        if (hover && hover.side === "q" && hover.i !== q) continue;
        for (var k = 0; k < n; k++) {
          if (hover && hover.side === "k" && hover.i !== k) continue;
          if (S.links !== "all" && !linkShown(V.segment[q], V.segment[k])) continue;
          var p = mat[base + q * n + k], shown = p / dv;
          if (hover) weightOf[hover.side === "q" ? k : q] += shown / heads.length;
          if (!(shown >= THRESHOLD)) continue;
          buckets[Math.min(19, Math.floor(shown * 20))].push(q, k);
          lines++; mass += p;
          digest = (digest * 31 + q * 7919 + k * 104729 + h * 15485863 + Math.round(p * 1000)) % 2147483647;
          if (!best || p > best.p) best = { q: q, k: k, p: p, head: h };
          if (top5.length < 5 || p > top5[top5.length - 1].p) {
            top5.push({ q: q, k: k, p: p, head: h });
            top5.sort(function (a, b) { return b.p - a.p; });
            if (top5.length > 5) top5.pop();
          }
        }
      }
      ctx.strokeStyle = headColour(h);
      ctx.lineWidth = heads.length > 1 ? 1.5 : 2;
      for (var bb = 0; bb < 20; bb++) {
        var seg = buckets[bb];
        if (!seg.length) continue;
        ctx.globalAlpha = Math.min(1, (bb + 0.5) / 20 * (heads.length > 1 ? 0.8 : 1));
        ctx.beginPath();
        for (var s = 0; s < seg.length; s += 2) { ctx.moveTo(x0, y(seg[s])); ctx.lineTo(x1, y(seg[s + 1])); }
        ctx.stroke();
      }
    }
    ctx.globalAlpha = 1;
    for (var t = 0; t < n; t++) {
      for (var sideIx = 0; sideIx < 2; sideIx++) {
        var isQ = sideIx === 0, xText = isQ ? x0 - 4 : x1 + 4;
        var hovered = hover && ((hover.side === "q") === isQ) && hover.i === t;
        var shade = hover && ((hover.side === "q") !== isQ) ? weightOf[t] : 0;
        if (hovered || shade > 0.01) {
          ctx.fillStyle = hovered ? "rgba(31,95,191,0.25)" : "rgba(255,140,0," + Math.min(0.85, shade).toFixed(3) + ")";
          ctx.fillRect(isQ ? 0 : x1 + 2, top + t * rowH + 1, colW + 4, rowH - 2);
        }
        ctx.fillStyle = V.special[t] ? "#8a93a0" : "#1d232b";
        ctx.textAlign = isQ ? "right" : "left";
        ctx.fillText(V.labels[t], xText, y(t));
      }
    }
    drawn = { lines: lines, mass: Math.round(mass * 1000) / 1000, digest: digest, strongest: best, heads: heads.length, top: top5 };
    topLinks.textContent = top5.length ? "Strongest links shown: " + top5.map(function (t) {
      return V.labels[t.q] + " \u2192 " + V.labels[t.k] + " " + t.p.toFixed(3) + (heads.length > 1 ? " (H" + (t.head + 1) + ")" : "");
    }).join(" \u00b7 ") : "No link above " + THRESHOLD + ".";
    hvTitle.innerHTML = "";
    hvTitle.appendChild(document.createTextNode("Head view"));
    el("small", { text: (S.head >= 0 ? headName(S.layer, S.head) : "L" + (S.layer + 1) + ", all heads") + " \u00b7 " + n + " " + S.units + (best ? " \u00b7 strongest link " + V.labels[best.q] + " \u2192 " + V.labels[best.k] + " (" + best.p.toFixed(3) + ")" : "") }, hvTitle);
    for (var j = 0; j < H; j++) headBtns[j].className = j === S.head ? "on" : "";
    allBtn.className = "all" + (S.head < 0 ? " on" : "");
  }
  function linkShown(a, b) {
    return S.links === "within" ? a === b : S.links === "ab" ? a === 0 && b === 1 : S.links === "ba" ? a === 1 && b === 0 : true;
  }
  function wordPeak(mat, base, n) {
    var m = 0;
    for (var i = 0; i < n * n; i++) if (mat[base + i] > m) m = mat[base + i];
    return m > 0 ? m : Infinity;
  }
  function hoverAt(e) {
    if (!lay) return null;
    var r = hv.getBoundingClientRect(), x = e.clientX - r.left, yy = e.clientY - r.top;
    var i = Math.floor((yy - lay.top) / lay.rowH);
    if (i < 0 || i >= lay.n) return null;
    if (x < lay.x0) return { side: "q", i: i };
    if (x > lay.x1) return { side: "k", i: i };
    return null;
  }
  hv.addEventListener("mousemove", function (e) {
    var h = hoverAt(e), old = S.hover;
    if ((h && old && h.side === old.side && h.i === old.i) || (!h && !old)) return;
    S.hover = h; drawHeadView();
  });
  hv.addEventListener("mouseleave", function () { if (S.hover) { S.hover = null; drawHeadView(); } });

  // ---------------------------------------------------------------- model view
  var thumbs = [], offscreen = document.createElement("canvas");
  function paintMatrix(mat, base, n, target, w, hgt, dv) {
    offscreen.width = n; offscreen.height = n;
    var octx = offscreen.getContext("2d"), img = octx.createImageData(n, n), d = img.data;
    for (var q = 0; q < n; q++) for (var k = 0; k < n; k++) {
      var v = Math.sqrt(Math.max(0, Math.min(1, mat[base + q * n + k] / dv))), o = (q * n + k) * 4;
      d[o] = 255 - v * (255 - 16); d[o + 1] = 255 - v * (255 - 66); d[o + 2] = 255 - v * (255 - 150); d[o + 3] = 255;
    }
    octx.putImageData(img, 0, 0);
    var ctx = target.getContext("2d");
    ctx.imageSmoothingEnabled = n > w;
    ctx.drawImage(offscreen, 0, 0, w, hgt);
  }
  function patternOf(l, h) {
    var P = D.per_example.pattern;
    return P && P[S.ex] ? P[S.ex][l][h] : null;
  }
  function buildGrid() {
    var size = H <= 12 ? 44 : H <= 16 ? 34 : 24;
    grid.style.gridTemplateColumns = "26px repeat(" + H + ", " + (size + 4) + "px)";
    el("div", { cls: "collab" }, grid);
    for (var h = 0; h < H; h++) el("div", { cls: "collab", text: "H" + (h + 1) }, grid);
    for (var l = 0; l < L; l++) {
      el("div", { cls: "rowlab", text: "L" + (l + 1) }, grid);
      for (var h2 = 0; h2 < H; h2++) (function (l, h) {
        var c = el("canvas", {}, grid);
        sizeCanvas(c, size, size);
        c.addEventListener("click", function () { select({ layer: l, head: h }); });
        c.addEventListener("mousemove", function (e) {
          var p = patternOf(l, h), cos = D.per_example.cosine && D.per_example.cosine[S.ex];
          showTip(e, headName(l, h) + (p !== null ? " \u00b7 " + D.class_names[p] : "") + (cos ? " \u00b7 cosine " + fmt(cos[l][h]) : ""));
        });
        c.addEventListener("mouseleave", hideTip);
        thumbs.push({ c: c, l: l, h: h, size: size });
      })(l, h2);
    }
    if (D.per_example.pattern) {
      mvLegend.appendChild(document.createTextNode("Border: this example's pattern type (classify): "));
      D.class_names.forEach(function (name, i) { var s = el("span", {}, mvLegend); el("i", {}, s).style.background = PALETTE[i % PALETTE.length]; s.appendChild(document.createTextNode(name)); });
    }
  }
  function drawModelView() {
    var V = current(), n = V.n;
    var t1 = performance.now();
    thumbs.forEach(function (t) {
      var b = (t.l * H + t.h) * n * n;
      paintMatrix(V.mat, b, n, t.c, t.size, t.size, S.units === "words" && !D.distribution ? wordPeak(V.mat, b, n) : divisor(t.l, t.h));
      var p = patternOf(t.l, t.h);
      t.c.style.borderColor = (t.l === S.layer && t.h === S.head) ? "#1d232b" : p !== null ? PALETTE[p % PALETTE.length] : "transparent";
    });
    timings.model_view_ms = performance.now() - t1;
    mvTitle.innerHTML = "";
    mvTitle.appendChild(document.createTextNode("Model view"));
    el("small", { text: "every head of example #" + D.examples[S.ex].index + "; rows query, columns key; click a map to select the head" }, mvTitle);
    drawZoom();
  }
  function drawZoom() {
    var V = current(), n = V.n, h = S.head >= 0 ? S.head : 0;
    var labels = n <= 80, pad = labels ? 90 : 0, cell = Math.max(1, Math.min(12, Math.floor(480 / n))), side = Math.max(n * cell, 240);
    var ctx = sizeCanvas(zoom, side + pad, side + pad);
    ctx.save(); ctx.translate(pad, pad);
    var zb = (S.layer * H + h) * n * n;
    paintMatrix(V.mat, zb, n, { getContext: function () { return ctx; } }, side, side, S.units === "words" && !D.distribution ? wordPeak(V.mat, zb, n) : divisor(S.layer, h));
    ctx.restore();
    if (labels) {
      ctx.font = Math.min(11, Math.max(7, side / n - 1)) + "px system-ui, sans-serif";
      ctx.fillStyle = "#1d232b"; ctx.textBaseline = "middle"; ctx.textAlign = "right";
      var step = side / n;
      for (var t = 0; t < n; t++) ctx.fillText(V.labels[t].slice(0, 12), pad - 4, pad + (t + 0.5) * step);
      for (var u = 0; u < n; u++) { ctx.save(); ctx.translate(pad + (u + 0.5) * step, pad - 4); ctx.rotate(-Math.PI / 2); ctx.textAlign = "left"; ctx.fillText(V.labels[u].slice(0, 12), 0, 0); ctx.restore(); }
    }
    var p = patternOf(S.layer, h);
    zoomTitle.textContent = headName(S.layer, h) + " enlarged" + (p !== null ? " \u00b7 pattern: " + D.class_names[p] : "") + " (darker = more attention; square-root scale" + (D.distribution ? "" : ", relative to the map's largest value") + ")";
  }

  // ---------------------------------------------------------------- per-head grids
  var gridLay = null;
  function cellColour(g, v, lo, hi) {
    if (v === null) return "#e6e8eb";
    if (g.categories) return PALETTE[v % PALETTE.length];
    if (lo < 0 && hi > 0) {
      var m = Math.max(-lo, hi), a = Math.min(1, Math.abs(v) / m);
      return v < 0 ? "rgba(33,102,172," + a.toFixed(3) + ")" : "rgba(178,24,43," + a.toFixed(3) + ")";
    }
    var r = hi > lo ? (v - lo) / (hi - lo) : 0.5;
    return "rgba(31,95,191," + (0.08 + 0.92 * r).toFixed(3) + ")";
  }
  function gridValues(g) {
    if (!g.per_example) return g.values;
    var rows = D.per_example[g.per_example], v = rows && rows[S.ex];
    if (v) return v;
    var none = [];
    for (var l = 0; l < L; l++) { none.push([]); for (var h = 0; h < H; h++) none[l].push(null); }
    return none;
  }
  function drawHeadGrid() {
    if (!hqCanvas) return;
    var g = D.grids[S.grid], lo = Infinity, hi = -Infinity, values = gridValues(g);
    values.forEach(function (row) { row.forEach(function (v) { if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); } }); });
    var cw = H <= 16 ? 44 : 26, ch = 22, left = 30, top = 18;
    var ctx = sizeCanvas(hqCanvas, left + H * cw + 2, top + L * ch + 2);
    gridLay = { cw: cw, ch: ch, left: left, top: top };
    ctx.font = "10.5px system-ui, sans-serif"; ctx.textBaseline = "middle"; ctx.textAlign = "center";
    for (var h = 0; h < H; h++) { ctx.fillStyle = "#5d6875"; ctx.fillText("H" + (h + 1), left + h * cw + cw / 2, top / 2); }
    for (var l = 0; l < L; l++) {
      ctx.fillStyle = "#5d6875"; ctx.fillText("L" + (l + 1), left / 2, top + l * ch + ch / 2);
      for (var h3 = 0; h3 < H; h3++) {
        var v = values[l][h3], x = left + h3 * cw, yy = top + l * ch;
        ctx.fillStyle = cellColour(g, v, lo, hi);
        ctx.fillRect(x + 1, yy + 1, cw - 2, ch - 2);
        if (cw >= 40 && v !== null && !g.categories) {
          var dark = (lo < 0 && hi > 0) ? Math.abs(v) / Math.max(-lo, hi) > 0.55 : (hi > lo && (v - lo) / (hi - lo) > 0.55);
          ctx.fillStyle = dark ? "#fff" : "#1d232b"; ctx.fillText(fmt(v), x + cw / 2, yy + ch / 2);
        }
        if (l === S.layer && h3 === S.head) { ctx.strokeStyle = "#1d232b"; ctx.lineWidth = 2; ctx.strokeRect(x + 1, yy + 1, cw - 2, ch - 2); }
      }
    }
    hqDesc.textContent = g.source + " store: " + g.name + (g.description ? " \u2014 " + g.description : "") +
      (g.per_example && !(D.per_example[g.per_example] || [])[S.ex] ? " (this example is not in that store)" : "");
    hqLegend.innerHTML = "";
    if (g.categories) g.categories.forEach(function (name, i) { var s = el("span", {}, hqLegend); el("i", {}, s).style.background = PALETTE[i % PALETTE.length]; s.appendChild(document.createTextNode(name)); });
    else if (isFinite(lo)) hqLegend.appendChild(document.createTextNode("min " + fmt(lo) + ", max " + fmt(hi) + (lo < 0 && hi > 0 ? " (blue negative, red positive)" : " (darker = larger)") + "; click a cell to show that head"));
  }
  function gridCell(e) {
    if (!gridLay) return null;
    var r = hqCanvas.getBoundingClientRect(), h = Math.floor((e.clientX - r.left - gridLay.left) / gridLay.cw), l = Math.floor((e.clientY - r.top - gridLay.top) / gridLay.ch);
    return l >= 0 && l < L && h >= 0 && h < H ? { layer: l, head: h } : null;
  }
  if (hqCanvas) {
    hqSel.addEventListener("change", function () { S.grid = +hqSel.value; drawHeadGrid(); });
    hqCanvas.addEventListener("click", function (e) { var c = gridCell(e); if (c) select(c); });
    hqCanvas.addEventListener("mousemove", function (e) {
      var c = gridCell(e), g = D.grids[S.grid];
      if (!c) return hideTip();
      var v = gridValues(g)[c.layer][c.head];
      showTip(e, headName(c.layer, c.head) + " \u00b7 " + g.name + " = " + (g.categories && v !== null ? g.categories[v] : fmt(v)));
    });
    hqCanvas.addEventListener("mouseleave", hideTip);
  }

  // ---------------------------------------------------------------- state
  function drawSentence() {
    var ex = D.examples[S.ex];
    sentence.innerHTML = "";
    el("b", { text: "#" + ex.index + " " + ex.id }, sentence);
    sentence.appendChild(document.createTextNode(" " + ex.text_a + (ex.text_b ? "  \u2016  " + ex.text_b : "") + (ex.label !== null ? "  (label: " + ex.label + ")" : "")));
  }
  function select(o) {
    var exChanged = o.ex !== undefined && o.ex !== S.ex, unitsChanged = o.units !== undefined && o.units !== S.units;
    if (o.ex !== undefined) S.ex = Math.max(0, Math.min(D.examples.length - 1, o.ex));
    if (o.layer !== undefined) S.layer = Math.max(0, Math.min(L - 1, o.layer));
    if (o.head !== undefined) S.head = Math.max(-1, Math.min(H - 1, o.head));
    if (o.units !== undefined) S.units = o.units === "words" ? "words" : "tokens";
    if (o.links !== undefined) S.links = o.links;
    S.hover = null;
    exSel.value = String(S.ex); layerSel.value = String(S.layer); headSel.value = String(S.head); unitSel.value = S.units; linkSel.value = S.links;
    var t1 = performance.now();
    if (exChanged || unitsChanged || o.force) { drawSentence(); drawModelView(); }
    else { thumbs.forEach(function (t) { var p = patternOf(t.l, t.h); t.c.style.borderColor = (t.l === S.layer && t.h === S.head) ? "#1d232b" : p !== null ? PALETTE[p % PALETTE.length] : "transparent"; }); drawZoom(); }
    drawHeadView();
    drawHeadGrid();
    timings.last_draw_ms = performance.now() - t1;
    try { history.replaceState(null, "", "#ex=" + D.examples[S.ex].index + "&layer=" + (S.layer + 1) + "&head=" + (S.head >= 0 ? S.head + 1 : "all") + (S.units === "words" ? "&units=words" : "")); } catch (err) { /* file:// in some browsers */ }
  }
  exSel.addEventListener("change", function () { select({ ex: +exSel.value }); });
  layerSel.addEventListener("change", function () { select({ layer: +layerSel.value }); });
  headSel.addEventListener("change", function () { select({ head: +headSel.value }); });
  unitSel.addEventListener("change", function () { select({ units: unitSel.value }); });
  linkSel.addEventListener("change", function () { select({ links: linkSel.value }); });
  hv.addEventListener("keydown", function (e) {
    if (e.key === "ArrowRight") select({ head: (S.head + 1) % H }); else if (e.key === "ArrowLeft") select({ head: (S.head + H - 1) % H });
    else if (e.key === "ArrowDown") select({ layer: (S.layer + 1) % L }); else if (e.key === "ArrowUp") select({ layer: (S.layer + L - 1) % L });
  });
  function fromHash() {
    var o = { force: true }, m = /[#&]ex=([^&]+)/.exec(location.hash), ly = /[#&]layer=(\d+)/.exec(location.hash), hd = /[#&]head=(\w+)/.exec(location.hash);
    if (m) D.examples.forEach(function (ex, i) { if (String(ex.index) === m[1]) o.ex = i; });
    if (ly) o.layer = +ly[1] - 1;
    if (hd) o.head = hd[1] === "all" ? -1 : +hd[1] - 1;
    if (/[#&]units=words/.test(location.hash)) o.units = "words";
    return o;
  }
  buildGrid();
  if (D.examples.length) select(fromHash());
  timings.ready_ms = performance.now();  // since navigation start: parse, decode and first draw of every panel
  window.bertsecretsView = {
    ready: true, timings: timings, select: select,
    grid: function () { var g = D.grids[S.grid]; return g ? { name: g.name, source: g.source, values: gridValues(g) } : null; },
    state: function () { return { ex: S.ex, index: D.examples[S.ex].index, layer: S.layer, head: S.head, units: S.units, links: S.links, n: lay ? lay.n : 0, drawn: drawn }; },
    layout: function () {
      var r = hv.getBoundingClientRect();
      return { left: r.left + window.scrollX, top: r.top + window.scrollY, x0: lay.x0, x1: lay.x1, rowTop: lay.top, rowH: lay.rowH, n: lay.n, width: lay.width, height: lay.height };
    },
  };
})();
