/* The latent explorer, live on the course site without a kernel (issue #35).
 *
 * The site build (helper_lib.tools.book) turns each explorer output of a notebook into a
 * <figure class="vae-live" data-explorer="{...}"> that holds the static picture (with its alt
 * text) and this script. Here the picture gives way to a panel: the latent map with the test
 * codes, a point moved by mouse, touch or arrow keys, the digit each decoder makes of it, and
 * what the shipped classifier reads in it. The models run in onnxruntime-web (WebAssembly).
 *
 * Everything arrives by <script> tags, which browsers load from file:// as well as over HTTP
 * (they refuse fetch() and module imports from disk): ort-runtime.js holds onnxruntime-web's
 * bundle and its WebAssembly binary, models.js the ONNX files, each as base64. Where
 * WebAssembly or JavaScript is missing, the static picture stays.
 */
(function () {
  "use strict";
  if (window.vaeExplorer) { return; }
  var here = document.currentScript ? document.currentScript.src : "";
  var BASE = here ? here.replace(/[^/]*$/, "") : "_static/explorer/";
  var STEP = 0.1, BIG_STEP = 0.5;  // the arrow keys' moves in z, without and with Shift

  function bytes(b64) {
    var text = atob(b64), out = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) { out[i] = text.charCodeAt(i); }
    return out;
  }

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      var s = document.createElement("script");
      s.src = src;
      s.onload = resolve;
      s.onerror = function () { reject(new Error("could not load " + src)); };
      document.head.appendChild(s);
    });
  }

  var runtime = null;  // one onnxruntime and one session per model for the whole page
  function startRuntime() {
    if (runtime) { return runtime; }
    runtime = (async function () {
      if (typeof WebAssembly !== "object") { throw new Error("this browser has no WebAssembly"); }
      var marks = window.vaeExplorer.marks;  // for benchmarks/live_explorer.py
      marks.start = performance.now();
      await Promise.all([loadScript(BASE + "ort-runtime.js"), loadScript(BASE + "models.js")]);
      marks.scripts = performance.now();
      var url = URL.createObjectURL(new Blob([bytes(window.VAE_ORT.bundle)],
                                             {type: "text/javascript"}));
      var ort = await import(url);
      ort.env.wasm.numThreads = 1;  // threads need cross-origin isolation, which file:// lacks
      ort.env.wasm.proxy = false;
      ort.env.wasm.wasmBinary = bytes(window.VAE_ORT.wasm);
      marks.decoded = performance.now();
      var sessions = {};
      for (var name of Object.keys(window.VAE_MODELS)) {
        sessions[name] = await ort.InferenceSession.create(bytes(window.VAE_MODELS[name]),
                                                           {executionProviders: ["wasm"]});
        marks[name] = performance.now();
      }
      return {ort: ort, sessions: sessions};
    })();
    return runtime;
  }

  function el(tag, attrs, parent) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    if (parent) { parent.appendChild(node); }
    return node;
  }

  function fmt(v) { return (v < 0 ? "\u2212" : "") + Math.abs(v).toFixed(2); }

  function Panel(figure, cfg) {
    this.figure = figure;
    this.cfg = cfg;
    this.z = cfg.z.slice();
    this.mode = "move";
    this.ends = [];  // interpolation: the codes of the two test digits picked, A and B
    this.t = 0.5;
    this.frames = 0;
    this.busy = false;
    this.pending = false;
  }

  Panel.prototype.build = function () {
    var cfg = this.cfg, self = this;
    var box = el("div", {"class": "vae-live-panel", role: "group",
                         "aria-label": "Live latent explorer"});
    var modes = el("div", {"class": "vae-live-modes"}, box);
    this.moveButton = el("button", {type: "button", "aria-pressed": "true",
                                    text: "Move z"}, modes);
    this.lerpButton = el("button", {type: "button", "aria-pressed": "false",
                                    text: "Interpolate two test digits"}, modes);
    this.moveButton.addEventListener("click", function () { self.setMode("move"); });
    this.lerpButton.addEventListener("click", function () { self.setMode("lerp"); });
    var row = el("div", {"class": "vae-live-row"}, box);
    var help = "arrow keys move z (Shift: further); in interpolation mode, Enter picks the " +
               "test digit nearest z as A, then B";
    this.map = el("canvas", {"class": "vae-live-map", width: 300, height: 300, tabindex: "0",
                             role: "application",
                             "aria-label": "Latent map of " + cfg.labels.length +
                             " test codes, coloured and labelled by digit: " + help}, row);
    this.digits = cfg.titles.map(function (title) {
      var cell = el("div", {"class": "vae-live-digit"}, row);
      el("div", {"class": "vae-live-title", text: title}, cell);
      var canvas = el("canvas", {width: 28, height: 28, role: "img",
                                 "aria-label": title + ": decoded digit"}, cell);
      return canvas;
    });
    var lerp = el("div", {"class": "vae-live-lerp", hidden: ""}, box);
    var label = el("label", {text: "from A to B "}, lerp);
    this.slider = el("input", {type: "range", min: "0", max: "1", step: "0.01", value: "0.5",
                               "aria-label": "position between A and B"}, label);
    this.slider.addEventListener("input", function () {
      self.t = parseFloat(self.slider.value);
      self.lerpUpdate();
    });
    this.lerpBox = lerp;
    this.line = el("p", {"class": "vae-live-text"}, box);
    this.spoken = el("p", {"class": "vae-live-sr", "aria-live": "polite"}, box);
    this.background = this.drawBackground();
    this.bindPointer();
    this.map.addEventListener("keydown", function (e) { self.key(e); });
    return box;
  };

  Panel.prototype.toPixel = function (z) {
    var L = this.cfg.limit;
    return [(z[0] + L) / (2 * L) * 300, (L - z[1]) / (2 * L) * 300];
  };

  Panel.prototype.toCode = function (x, y) {
    var L = this.cfg.limit, c = function (v) { return Math.max(-L, Math.min(L, v)); };
    return [c(x / 300 * 2 * L - L), c(L - y / 300 * 2 * L)];
  };

  Panel.prototype.drawBackground = function () {
    var cfg = this.cfg, canvas = document.createElement("canvas");
    canvas.width = 300; canvas.height = 300;
    var g = canvas.getContext("2d");
    g.fillStyle = "#ffffff"; g.fillRect(0, 0, 300, 300);
    g.strokeStyle = "#999999"; g.lineWidth = 1;
    var o = this.toPixel([0, 0]);
    g.beginPath(); g.moveTo(0, o[1]); g.lineTo(300, o[1]); g.moveTo(o[0], 0);
    g.lineTo(o[0], 300); g.stroke();
    g.globalAlpha = 0.55;
    for (var i = 0; i < cfg.codes.length; i++) {
      var p = this.toPixel(cfg.codes[i]);
      g.fillStyle = cfg.colours[cfg.labels[i] % cfg.colours.length];
      g.fillRect(p[0] - 1.5, p[1] - 1.5, 3, 3);
    }
    g.globalAlpha = 1;
    g.font = "bold 15px sans-serif"; g.textAlign = "center"; g.textBaseline = "middle";
    g.lineWidth = 3; g.strokeStyle = "#ffffff"; g.fillStyle = "#000000";
    cfg.medians.forEach(function (m) {  // each class named on the map, not by colour alone
      var q = this.toPixel([m[1], m[2]]);
      g.strokeText(String(m[0]), q[0], q[1]); g.fillText(String(m[0]), q[0], q[1]);
    }, this);
    g.font = "13px sans-serif"; g.textAlign = "left"; g.textBaseline = "alphabetic";
    g.fillText("z1 \u2192", 250, o[1] - 5); g.fillText("z2 \u2191", o[0] + 5, 14);
    g.fillText(fmt(-cfg.limit), 3, 296); g.textAlign = "right";
    g.fillText(fmt(cfg.limit), 297, 296);
    g.strokeStyle = "#595959"; g.lineWidth = 1; g.strokeRect(0.5, 0.5, 299, 299);
    return canvas;
  };

  Panel.prototype.drawMap = function () {
    var g = this.map.getContext("2d");
    g.drawImage(this.background, 0, 0);
    var mark = function (p, text) {
      g.lineWidth = 3; g.strokeStyle = "#ffffff"; g.fillStyle = "#000000";
      g.font = "bold 15px sans-serif"; g.textAlign = "left"; g.textBaseline = "bottom";
      g.strokeText(text, p[0] + 6, p[1] - 4); g.fillText(text, p[0] + 6, p[1] - 4);
    };
    if (this.mode === "lerp" && this.ends.length === 2) {
      var a = this.toPixel(this.ends[0]), b = this.toPixel(this.ends[1]);
      g.setLineDash([5, 4]); g.strokeStyle = "#000000"; g.lineWidth = 1.5;
      g.beginPath(); g.moveTo(a[0], a[1]); g.lineTo(b[0], b[1]); g.stroke(); g.setLineDash([]);
    }
    this.ends.forEach(function (z, k) { if (this.mode === "lerp") { mark(this.toPixel(z), "AB"[k]); } }, this);
    var p = this.toPixel(this.z);  // the point: a black ring with a white edge, and a cross
    g.lineWidth = 4; g.strokeStyle = "#ffffff";
    g.beginPath(); g.arc(p[0], p[1], 7, 0, 2 * Math.PI); g.stroke();
    g.lineWidth = 2; g.strokeStyle = "#000000";
    g.beginPath(); g.arc(p[0], p[1], 7, 0, 2 * Math.PI); g.moveTo(p[0] - 11, p[1]);
    g.lineTo(p[0] + 11, p[1]); g.moveTo(p[0], p[1] - 11); g.lineTo(p[0], p[1] + 11); g.stroke();
  };

  Panel.prototype.bindPointer = function () {
    var self = this, dragging = false;
    var at = function (e) {
      var r = self.map.getBoundingClientRect();
      return self.toCode((e.clientX - r.left) * 300 / r.width, (e.clientY - r.top) * 300 / r.height);
    };
    this.map.addEventListener("pointerdown", function (e) {
      if (self.mode === "lerp") { self.pick(at(e)); return; }
      dragging = true;
      if (self.map.setPointerCapture) { try { self.map.setPointerCapture(e.pointerId); } catch (err) { /* synthetic */ } }
      self.set(at(e));
    });
    this.map.addEventListener("pointermove", function (e) { if (dragging) { self.set(at(e)); } });
    var stop = function () { dragging = false; };
    this.map.addEventListener("pointerup", stop);
    this.map.addEventListener("pointercancel", stop);
  };

  Panel.prototype.key = function (e) {
    var d = e.shiftKey ? BIG_STEP : STEP, z = this.z.slice();
    var moves = {ArrowLeft: [-d, 0], ArrowRight: [d, 0], ArrowUp: [0, d], ArrowDown: [0, -d]};
    if (moves[e.key]) {
      z[0] += moves[e.key][0]; z[1] += moves[e.key][1];
      this.set(this.toCode.apply(this, this.toPixel(z)));
    } else if (e.key === "Home") {
      this.set([0, 0]);
    } else if (e.key === "Enter" && this.mode === "lerp") {
      this.pick(this.z);
    } else {
      return;
    }
    e.preventDefault();
    e.stopPropagation();  // the slides' own arrow keys must not move on to the next slide
  };

  Panel.prototype.setMode = function (mode) {
    this.mode = mode;
    this.moveButton.setAttribute("aria-pressed", String(mode === "move"));
    this.lerpButton.setAttribute("aria-pressed", String(mode === "lerp"));
    if (mode === "lerp") { this.lerpBox.removeAttribute("hidden"); } else { this.lerpBox.setAttribute("hidden", ""); }
    this.ends = [];
    this.endLabels = [];
    this.say(mode === "lerp" ? "Click two test digits on the map (or press Enter twice), " +
             "then move the slider from A to B" : "");
    this.drawMap();
  };

  Panel.prototype.pick = function (z) {  // the test digit whose code is nearest z
    var best = 0, bestD = Infinity, codes = this.cfg.codes;
    for (var i = 0; i < codes.length; i++) {
      var d = Math.pow(codes[i][0] - z[0], 2) + Math.pow(codes[i][1] - z[1], 2);
      if (d < bestD) { bestD = d; best = i; }
    }
    if (this.ends.length === 2 || !this.endLabels) { this.ends = []; this.endLabels = []; }
    this.ends.push(codes[best].slice());
    this.endLabels.push(this.cfg.labels[best]);
    if (this.ends.length === 2) {
      this.say("A: a test " + this.endLabels[0] + ", B: a test " + this.endLabels[1] +
               "; the slider moves z from A to B");
      this.lerpUpdate();
    } else {
      this.say("A: a test " + this.endLabels[0] + "; now pick B");
      this.set(codes[best].slice());
    }
  };

  Panel.prototype.lerpUpdate = function () {
    if (this.ends.length !== 2) { return; }
    var a = this.ends[0], b = this.ends[1], t = this.t;
    this.set([a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])]);
  };

  Panel.prototype.set = function (z) {
    this.z = z;
    this.pending = true;
    if (!this.busy) { this.render(); }
  };

  Panel.prototype.render = async function () {
    this.busy = true;
    try {
      while (this.pending) {
        this.pending = false;
        var z = this.z.slice(), ort = this.rt.ort, s = this.rt.sessions, cfg = this.cfg;
        var reads = [];
        for (var k = 0; k < cfg.models.length; k++) {
          var out = await s[cfg.models[k]].run({input: new ort.Tensor("float32", Float32Array.from(z), [1, 2])});
          var x = out.output.data;
          this.paint(this.digits[k], x);
          var p = (await s[cfg.classifier].run({input: new ort.Tensor("float32", x, [1, 1, 28, 28])})).output.data;
          var best = 0;
          for (var j = 1; j < p.length; j++) { if (p[j] > p[best]) { best = j; } }
          reads.push([best, p[best]]);
        }
        this.drawMap();
        var what = reads.map(function (r, i) {
          return (r[0] === 8 ? "an " : "a ") + r[0] + " (" + Math.round(100 * r[1]) + " %)" +
                 (cfg.models.length > 1 ? " in the " + cfg.titles[i] + "'s digit" : "");
        }).join(" and ");
        var text = "z = (" + fmt(z[0]) + ", " + fmt(z[1]) + "): the classifier reads " + what;
        this.line.textContent = text;
        this.digits.forEach(function (c, i) {
          c.setAttribute("aria-label", "The " + cfg.titles[i] + "'s digit for z = (" + fmt(z[0]) +
                         ", " + fmt(z[1]) + "): the classifier reads " +
                         (reads[i][0] === 8 ? "an " : "a ") + reads[i][0] + " (" +
                         Math.round(100 * reads[i][1]) + " %)");
        });
        this.figure.dataset.z = JSON.stringify(z);
        this.figure.dataset.reads = JSON.stringify(reads.map(function (r) { return r[0]; }));
        this.frames += 1;
        if (this.frames === 1) { this.firstFrame = performance.now(); this.figure.dataset.live = "ready"; }
        this.debounceSay(text);
      }
    } finally {
      this.busy = false;
    }
  };

  Panel.prototype.paint = function (canvas, x) {  // 0 white, 1 black: matplotlib's "binary"
    var g = canvas.getContext("2d"), img = g.createImageData(28, 28);
    for (var i = 0; i < 784; i++) {
      var v = Math.round(255 * (1 - Math.min(1, Math.max(0, x[i]))));
      img.data[4 * i] = v; img.data[4 * i + 1] = v; img.data[4 * i + 2] = v; img.data[4 * i + 3] = 255;
    }
    g.putImageData(img, 0, 0);
  };

  Panel.prototype.say = function (text) { this.spoken.textContent = text; };

  Panel.prototype.debounceSay = function (text) {  // a screen reader hears where z came to rest
    var self = this;
    clearTimeout(this.sayTimer);
    this.sayTimer = setTimeout(function () { self.say(text); }, 500);
  };

  async function start(figure) {
    var cfg = JSON.parse(figure.getAttribute("data-explorer"));
    var panel = new Panel(figure, cfg);
    figure.vaeExplorer = panel;
    figure.dataset.live = "starting";
    try {
      panel.rt = await startRuntime();
      var box = panel.build();
      var picture = figure.querySelector("img");
      figure.insertBefore(box, picture);
      picture.hidden = true;  // the static picture gives way; it stays for a failure
      var caption = figure.querySelector("figcaption");
      if (caption) { caption.textContent = "Live: drag the point or use the arrow keys; each decoder runs in your browser."; }
      panel.set(panel.z);
    } catch (err) {
      figure.dataset.live = "failed";
      var note = figure.querySelector("figcaption");
      if (note) { note.textContent = "The live explorer could not start here (" + err.message + "); the picture shows z = 0."; }
    }
  }

  window.vaeExplorer = {start: start, base: BASE, marks: {}};
  if (document.querySelector("figure.vae-live")) {  // the runtime loads while the page does
    startRuntime().catch(function () { /* start() says why, beside the picture */ });
  }
  var go = function () { document.querySelectorAll("figure.vae-live").forEach(start); };
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", go); } else { go(); }
})();
