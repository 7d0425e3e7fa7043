// The explorer's page: draws the net from the server's layout and reveals, step by step, the
// values and gradients the server computed. It does no arithmetic on them: every number shown is
// text or JSON that Gatework produced (POST api/run returns a whole walk for a feed).
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("gatework-data").textContent);
  const layout = DATA.layout;
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  let walk = DATA.walk;
  let fwd = 0;           // forward steps revealed
  let bwd = 0;           // backward steps revealed
  let last = null;       // the step just run: {dir: "forward" | "backward", index}
  let queue = Promise.resolve();
  const nodes = {};      // node id -> its element and parts
  const edges = [];      // {edge, path, label}

  function make(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }

  // -- drawing the net once ------------------------------------------------------------------
  function build() {
    $("title").textContent = walk.net + ": backpropagation, step by step";
    const picture = $("picture"), lines = $("edges");
    picture.style.width = layout.width + "px";
    picture.style.height = layout.height + "px";
    lines.setAttribute("width", layout.width);
    lines.setAttribute("height", layout.height);
    const defs = svg("defs");
    const marker = svg("marker", {id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5",
                                  markerWidth: "8", markerHeight: "8", orient: "auto",
                                  markerUnits: "userSpaceOnUse"});
    marker.appendChild(svg("path", {d: "M0,0 L10,5 L0,10 z", fill: "#555", stroke: "none"}));
    defs.appendChild(marker);
    lines.appendChild(defs);
    for (const n of layout.nodes) {
      const box = make("div", "node " + n.kind);
      Object.assign(box.style, {left: n.x + "px", top: n.y + "px", width: n.w + "px",
                                height: n.h + "px"});
      const parts = {box: box, node: n};
      if (n.kind === "gate") {
        box.appendChild(make("div", "name", n.name));
        box.appendChild(make("div", "type", n.label));
        box.dataset.gate = n.name;
      } else {
        const head = make("div", "head");
        head.appendChild(make("span", "name", n.name));
        head.appendChild(make("span", "shape", n.label));
        box.appendChild(head);
        parts.value = box.appendChild(make("div", "value"));
        parts.valuePic = box.appendChild(svg("svg", {class: "pic"}));
        parts.grad = box.appendChild(make("div", "grad"));
        parts.gradPic = box.appendChild(svg("svg", {class: "pic"}));
        if (n.label === "scalar") {
          parts.valuePic.style.display = parts.gradPic.style.display = "none";
        }
        box.dataset.blob = n.name;
      }
      picture.appendChild(box);
      nodes[n.id] = parts;
    }
    for (const edge of layout.edges) {
      const a = nodes[edge.source].node, b = nodes[edge.target].node;
      const [x1, y1, x2, y2] = layout.direction === "LR"
        ? [a.x + a.w, a.y + a.h / 2, b.x, b.y + b.h / 2]
        : [a.x + a.w / 2, a.y + a.h, b.x + b.w / 2, b.y];
      const d = layout.direction === "LR"
        ? `M${x1},${y1} C${(x1 + x2) / 2},${y1} ${(x1 + x2) / 2},${y2} ${x2},${y2}`
        : `M${x1},${y1} C${x1},${(y1 + y2) / 2} ${x2},${(y1 + y2) / 2} ${x2},${y2}`;
      const path = lines.appendChild(svg("path", {d: d, "marker-end": "url(#arrow)"}));
      const label = lines.appendChild(svg("text", {x: (x1 + x2) / 2 + 4,
                                                   y: (y1 + y2) / 2 - 4}));
      edges.push({edge: edge, path: path, label: label});
    }
    buildInputs();
    const notes = $("notes");
    for (const note of walk.notes || []) notes.appendChild(make("li", "", note));
  }

  function buildInputs() {
    const box = $("inputs");
    const names = Object.keys(walk.feed);
    if (!names.length) box.appendChild(make("p", "hint", "No input small enough to edit."));
    for (const name of names) {
      const row = make("label");
      row.appendChild(make("span", "", name));
      const field = make("input");
      field.dataset.input = name;
      field.value = JSON.stringify(walk.feed[name]);
      field.spellcheck = false;
      if (DATA.static) {
        field.readOnly = true;
        field.title = "editing needs the server: python scripts/explore.py CONFIG";
      }
      field.addEventListener("input", render);
      field.addEventListener("change", () => act(() => {}));
      row.appendChild(field);
      box.appendChild(row);
    }
    if (DATA.static && names.length) {
      box.appendChild(make("p", "hint", "A saved page: run scripts/explore.py to edit inputs."));
    }
  }

  // -- pictures of arrays ----------------------------------------------------------------------
  function drawPicture(target, pic, colour) {
    target.replaceChildren();
    if (!pic) return;
    const W = 156, H = 26;
    const span = pic.hi > pic.lo ? pic.hi - pic.lo : 1;
    if (pic.kind === "heatmap") {
      const cw = W / pic.cols, ch = H / pic.rows;
      pic.cells.forEach((v, i) => {
        const shade = v === null ? "#f00" : colour((v - pic.lo) / span);
        target.appendChild(svg("rect", {x: (i % pic.cols) * cw, y: Math.floor(i / pic.cols) * ch,
                                        width: cw + 0.3, height: ch + 0.3, fill: shade}));
      });
    } else {
      const top = Math.max(...pic.counts, 1), bw = W / pic.counts.length;
      pic.counts.forEach((count, i) => {
        const h = (H - 2) * count / top;
        target.appendChild(svg("rect", {x: i * bw + 0.5, y: H - h, width: bw - 1, height: h,
                                        fill: colour(0.8)}));
      });
    }
    const tip = svg("title");
    tip.textContent = (pic.kind === "heatmap" ? "heatmap" : "histogram") +
      ` from ${pic.lo} to ${pic.hi}`;
    target.appendChild(tip);
  }
  const grey = (t) => `hsl(0, 0%, ${Math.round(96 - 88 * t)}%)`;
  const blue = (t) => `hsl(222, 78%, ${Math.round(96 - 60 * t)}%)`;

  // -- what is revealed ------------------------------------------------------------------------
  function producedAt(name) {
    const index = walk.forward.findIndex((s) => s.tops.includes(name));
    return index;   // -1: an input or parameter, known before any step
  }

  function backwardIndex(gate) {
    return walk.backward.findIndex((s) => s.gate === gate);
  }

  function render() {
    const F = walk.forward.length, B = walk.backward.length;
    for (const parts of Object.values(nodes)) {
      const n = parts.node;
      if (n.kind === "gate") {
        renderGate(parts, n.name);
        continue;
      }
      const box = parts.box, value = walk.values[n.name], grad = walk.grads[n.name];
      if (value && producedAt(n.name) < fwd) {
        box.dataset.value = JSON.stringify(value.json);
        parts.value.textContent = value.text;
        drawPicture(parts.valuePic, value.picture, grey);
      } else {
        delete box.dataset.value;
        parts.value.textContent = "";
        drawPicture(parts.valuePic, null);
      }
      const arrived = (walk.arrivals[n.name] || []).filter(([i]) => i < bwd);
      parts.grad.classList.remove("partial");
      if (grad && walk.grad_after[n.name] < bwd) {
        box.dataset.grad = JSON.stringify(grad.json);
        parts.grad.textContent = grad.text;
        drawPicture(parts.gradPic, grad.picture, blue);
      } else {
        delete box.dataset.grad;
        parts.grad.textContent = arrived.length
          ? arrived.map((a) => a[1]).join(" + ") + " + ..." : "";
        if (arrived.length) parts.grad.classList.add("partial");
        drawPicture(parts.gradPic, null);
      }
      box.title = n.name + (box.dataset.value ? "\nvalue: " + value.text : "") +
        (box.dataset.grad ? `\nd${walk.of}/d${n.name}: ` + grad.text : "");
    }
    for (const {edge, path, label} of edges) {
      const current = last && stepOf(last).gate === edge.gate;
      path.classList.toggle("active", Boolean(current));
      const j = backwardIndex(edge.gate);
      const read = edge.target === "gate:" + edge.gate;
      const text = read && j >= 0 && j < bwd ? walk.backward[j].edges[edge.index].label : null;
      label.textContent = text === null ? "" : text;   // scalars only: arrays are in the panel
    }
    renderPanel();
    const dirty = isDirty();
    $("forward-step").disabled = !dirty && fwd >= F;
    $("backward-step").disabled = !dirty && (fwd < F || bwd >= B);
    $("run-all").disabled = !dirty && fwd >= F && bwd >= B;
    $("status").textContent = dirty ? "inputs changed: the next step recomputes from the start"
      : fwd < F ? `next: forward ${walk.forward[fwd].gate} (${walk.forward[fwd].type})`
      : bwd < B ? `next: backward ${walk.backward[bwd].gate} (${walk.backward[bwd].type})`
      : "done: every value and gradient computed";
  }

  function renderGate(parts, name) {
    const i = walk.forward.findIndex((s) => s.gate === name), j = backwardIndex(name);
    const box = parts.box;
    box.classList.toggle("ran", i < fwd);
    box.classList.toggle("current", Boolean(last && stepOf(last).gate === name));
    const lines = [];
    if (i >= 0 && i < fwd) lines.push("forward: " + walk.forward[i].text);
    if (j >= 0 && j < bwd) {
      lines.push("backward: " + walk.backward[j].upstream.join(", "));
      for (const e of walk.backward[j].edges) lines.push("  " + e.text);
    }
    box.title = lines.join("\n") || name;
  }

  function stepOf(step) {
    return step.dir === "forward" ? walk.forward[step.index] : walk.backward[step.index];
  }

  function renderPanel() {
    const panel = $("step-panel");
    panel.replaceChildren();
    if (!last) {
      panel.appendChild(make("p", "hint", "Step forward to start."));
      return;
    }
    const step = stepOf(last);
    panel.appendChild(make("p", "", `${last.dir}: ${step.gate} (${step.type})`));
    if (last.dir === "forward") {
      panel.appendChild(make("div", "line", step.text));
      return;
    }
    panel.appendChild(make("div", "line grad", "upstream " + step.upstream.join(", ")));
    for (const e of step.edges) panel.appendChild(make("div", "line grad", e.text));
    for (const s of step.sums) panel.appendChild(make("div", "line grad", s));
    if (step.edges.some((e) => e.text.includes(" x "))) {
      panel.appendChild(make("p", "hint", "upstream x local gradient = product"));
    }
  }

  // -- inputs and the server -------------------------------------------------------------------
  function readInputs() {
    const feed = {};
    for (const field of document.querySelectorAll("input[data-input]")) {
      try {
        feed[field.dataset.input] = JSON.parse(field.value);
      } catch (err) {
        feed[field.dataset.input] = field.value;
      }
    }
    return feed;
  }

  function isDirty() {
    return !DATA.static && JSON.stringify(readInputs()) !== JSON.stringify(walk.feed);
  }

  async function ensureCurrent() {
    if (!isDirty()) return true;
    const response = await fetch("api/run", {method: "POST",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify({feed: readInputs()})});
    const body = await response.json();
    const error = $("error");
    error.hidden = true;
    if (!response.ok) {
      error.textContent = body.error || response.statusText;
      error.hidden = false;
      return false;
    }
    walk = body;
    fwd = bwd = 0;
    last = null;
    return true;
  }

  function act(step) {
    queue = queue.then(async () => {
      try {
        if (await ensureCurrent()) step();
      } catch (err) {
        $("error").textContent = "the server did not answer: " + err.message;
        $("error").hidden = false;
      }
      render();
      if (!$("error").hidden) $("status").textContent = "error: " + $("error").textContent;
    });
    return queue;
  }

  $("forward-step").addEventListener("click", () => act(() => {
    if (fwd < walk.forward.length) last = {dir: "forward", index: fwd++};
  }));
  $("backward-step").addEventListener("click", () => act(() => {
    if (fwd >= walk.forward.length && bwd < walk.backward.length) {
      last = {dir: "backward", index: bwd++};
    }
  }));
  $("run-all").addEventListener("click", () => act(() => {
    fwd = walk.forward.length;
    bwd = walk.backward.length;
    last = bwd ? {dir: "backward", index: bwd - 1} : fwd ? {dir: "forward", index: fwd - 1} : null;
  }));
  $("reset").addEventListener("click", () => act(() => {
    fwd = bwd = 0;
    last = null;
  }));

  build();
  render();
})();
