// The attention lens: click any token and see where it looks, per layer and head, computed by
// attend's own attention kernel (engine.attention). One request fetches every layer and head of
// the clicked token; the layer slider, head picker and heads view redraw from that result.
const $ = (id) => document.getElementById(id);

let engine = null;
let source = {}; // {} = the conversation in the cache; { prompt } = a preset
let att = null; // the last engine.attention result
let seq = 0; // drops answers to clicks that a later click replaced

// Seed prompts that show what attention resolves: lens opens on `word`.
export const PRESETS = {
  pronoun: { prompt: "The animal didn't cross the road because it was too tired.", word: "it" },
  "bank-money": { prompt: "The bank can ensure your money is safe.", word: "bank" },
  "bank-river": { prompt: "They sat on the bank of the river.", word: "bank" },
};

export function setupLens(e, info) {
  engine = e;
  att = null;
  source = {};
  const layers = info.parameters.layers;
  $("lens-layer").max = String(layers - 1);
  $("lens-layer").value = String(layers - 1);
  $("lens-head").replaceChildren(new Option("mean of heads", "mean"));
  for (let h = 0; h < info.parameters.heads; h++) $("lens-head").append(new Option(`head ${h}`, String(h)));
  $("lens-tokens").replaceChildren();
  $("lens-heads").replaceChildren();
  $("lens-query").textContent = "Run a preset or chat, then click any token.";
  $("lens").hidden = false;
}

// The strongest view: the layer and head whose largest weight on an earlier token other than the
// first (often an attention sink) and the query itself is largest.
function bestView(a) {
  const q = a.query;
  let best = { layer: a.layers.length - 1, head: "mean", score: -1 };
  if (q < 2) return best;
  a.weights.forEach((heads, k) =>
    heads.forEach((row, h) => {
      for (let j = 1; j < q; j++) if (row[j] > best.score) best = { layer: k, head: String(h), score: row[j] };
    }),
  );
  return best;
}

// Where the query looks at layer index k: one head's row or the mean of all heads.
function row(k, head) {
  const heads = att.weights[k];
  if (head !== "mean") return heads[Number(head)];
  const n = heads[0].length;
  const w = new Array(n).fill(0);
  for (const r of heads) for (let j = 0; j < n; j++) w[j] += r[j] / heads.length;
  return w;
}

const shade = (w, max) => `rgba(59, 130, 246, ${Math.sqrt(w / (max || 1)).toFixed(3)})`;

function draw() {
  if (!att) return;
  const k = Number($("lens-layer").value);
  const head = $("lens-head").value;
  $("lens-layer-n").textContent = `${att.layers[k]} of ${att.layers.length - 1}`;
  const w = row(k, head);
  const max = Math.max(...w);
  const spans = att.tokens.map((t, j) => {
    const s = document.createElement("span");
    s.textContent = t.replace(/\n/g, "↵\n");
    s.dataset.j = String(j);
    if (j === att.query) s.classList.add("query");
    if (j <= att.query) {
      // Square root: attention is peaked (a few sink tokens take most); this keeps the rest visible.
      s.style.background = shade(w[j], max);
      s.dataset.weight = String(w[j]);
      s.title = `${JSON.stringify(t)} ← ${(100 * w[j]).toFixed(2)}% (weight ${w[j].toPrecision(4)})`;
    } else {
      s.classList.add("future");
      s.title = "after the query: causal attention cannot see it";
    }
    return s;
  });
  $("lens-tokens").replaceChildren(...spans);
  drawHeads(k);
}

// Small multiples: every head of the layer as a strip; click one to pick it.
function drawHeads(k) {
  const rows = att.weights[k].map((r, h) => {
    const div = document.createElement("div");
    div.className = "head-strip";
    if ($("lens-head").value === String(h)) div.classList.add("selected");
    const label = document.createElement("span");
    label.textContent = `head ${att.heads[h]}`;
    const c = document.createElement("canvas");
    const cell = Math.max(1, Math.min(12, Math.floor(480 / r.length)));
    c.width = cell * r.length;
    c.height = 12;
    const g = c.getContext("2d");
    const max = Math.max(...r);
    r.forEach((w, j) => {
      g.fillStyle = shade(w, max);
      g.fillRect(j * cell, 0, cell, 12);
    });
    div.append(label, c);
    div.addEventListener("click", () => {
      $("lens-head").value = String(h);
      draw();
    });
    return div;
  });
  $("lens-heads").replaceChildren(...rows);
}

// Fetch every layer and head for one query token of `src` and show the strongest view.
export async function lensOn(src, token) {
  if (!engine) return;
  const mine = ++seq;
  source = src;
  $("lens-query").textContent = "Computing attention…";
  const t0 = performance.now();
  let a;
  try {
    a = await engine.attention({ ...src, ...(token === undefined ? {} : { token }) });
  } catch (e) {
    if (mine === seq) $("lens-query").textContent = `Lens failed: ${e.message}`;
    return;
  }
  if (mine !== seq) return;
  att = a;
  const best = bestView(a);
  $("lens-layer").value = String(best.layer);
  $("lens-head").value = best.head;
  // The lens's own cost, measured by the engine (not the wait behind a streaming answer).
  const ms = (a.elapsed_ms ?? performance.now() - t0).toFixed(0);
  $("lens-query").textContent = `Token ${a.query} ${JSON.stringify(a.tokens[a.query])} looks at (${ms} ms for all ${a.layers.length} layers × ${a.heads.length} heads):`;
  $("rw-lens").textContent = `lens: ${ms} ms`;
  $("rw-lens").dataset.value = String(a.elapsed_ms ?? "");
  $("lens-caption").textContent =
    "Opened at the layer and head where this token's attention is most concentrated on one earlier token other than the first: " +
    "many heads park attention on the first token (an attention sink) when nothing else is relevant.";
  draw();
}

// The lens of the conversation so far (its last token), after an answer.
export const lensConversation = () => lensOn({});

export async function runPreset(name) {
  const p = PRESETS[name];
  const ids = await engine.tokenize(p.prompt);
  // Pick the token of `word` from the token texts of the prompt.
  const a = await engine.attention({ prompt: p.prompt, token: ids.length - 1, layer: 0, head: 0 });
  const j = a.tokens.findLastIndex((t) => t.replace(/^[\s▁Ġ]+/, "") === p.word);
  await lensOn({ prompt: p.prompt }, j >= 0 ? j : ids.length - 1);
}

$("lens-tokens").addEventListener("click", (ev) => {
  const j = ev.target?.dataset?.j;
  if (j !== undefined && att) lensOn(source, Number(j));
});
$("lens-layer").addEventListener("input", draw);
$("lens-head").addEventListener("change", draw);
for (const b of document.querySelectorAll("[data-preset]")) b.addEventListener("click", () => runPreset(b.dataset.preset));
