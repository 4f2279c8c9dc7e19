"""The feature browser: one static, self-contained HTML page for a real-model SAE run's features.

One entry per live latent: its density, the histogram of its activations (inline SVG drawn by the page's own
script), its monosemanticity and its top-activating contexts with the token highlighted. The page searches by
token (the latents whose top-activating tokens contain the text typed), sorts by density or monosemanticity, and
pages through the latents and through each latent's contexts. No server, no external script, font or image: it
works offline from a file.

Every text from the corpus reaches the page only as JSON data (with `<`, `>` and `&` escaped, so it cannot close
the script element) and is put into the document with `textContent`, never parsed as HTML.
"""
from __future__ import annotations

import html
import json

import numpy as np

CONTEXT = 8  # tokens shown on each side of a top-activating token
PER_PAGE = 25  # latents per page
CONTEXTS_SHOWN = 8  # contexts per latent before "more"


def token_pieces(tokens: list[str]) -> list[str]:
    """Token texts as pieces to concatenate into running text: WordPiece continuations (`##ing`) join the previous
    token, other WordPiece tokens get a space before them; byte-level BPE markers (`Ġ`, `▁`) become the space."""
    bpe = any(t.startswith(("Ġ", "▁")) for t in tokens)
    if bpe:
        return [" " + t[1:] if t.startswith(("Ġ", "▁")) else t for t in tokens]
    return [t[2:] if t.startswith("##") else " " + t for t in tokens]


def context(result: dict, row: int, width: int = CONTEXT) -> tuple[str, str, str]:
    """(before, token, after): the text around test row `row` inside its document run, `width` tokens each side."""
    rows = result["tensors"]["rows"]
    lo, hi = max(int(rows["start"][row]), row - width), min(int(rows["stop"][row]), row + width + 1)
    pieces = token_pieces(result["row_text"][lo:hi])
    i = row - lo
    return "".join(pieces[:i]), pieces[i], "".join(pieces[i + 1:])


def _json_for_script(obj) -> str:
    """JSON that is safe inside a <script> element: no `<`, `>` or `&` survives unescaped."""
    text = json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _finite(v: float, digits: int = 4):
    return round(float(v), digits) if np.isfinite(v) else None


def page_data(result: dict) -> dict:
    """What the page's script reads: the test rows' text pieces and document runs, and per live latent its
    figures, histogram and top rows (only those where it fired)."""
    f, rows = result["tensors"]["features"], result["tensors"]["rows"]
    feats = []
    for j in np.flatnonzero(np.asarray(f["fired"]) > 0):
        live = np.asarray(f["top_values"][j]) > 0
        feats.append([int(j), int(f["fired"][j]), _finite(f["density"][j], 6), _finite(f["max"][j]),
                      _finite(f["monosemanticity"][j]), np.asarray(f["hist"][j]).tolist(),
                      np.asarray(f["top_rows"][j])[live].tolist(),
                      [round(float(v), 3) for v in np.asarray(f["top_values"][j])[live]]])
    return {"rows": len(result["row_text"]), "width": CONTEXT, "per_page": PER_PAGE, "contexts_shown": CONTEXTS_SHOWN,
            "text": token_pieces(list(result["row_text"])), "start": np.asarray(rows["start"]).tolist(),
            "stop": np.asarray(rows["stop"]).tolist(), "features": feats}


_STYLE = """
body { font-family: system-ui, sans-serif; font-size: 15px; line-height: 1.4; max-width: 1150px; margin: 1.5em auto;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; border-bottom: 2px solid #444; } .note { color: #555; }
#controls { position: sticky; top: 0; background: #fff; padding: 0.5em 0; border-bottom: 1px solid #ccc; z-index: 1; }
#controls input, #controls select, button { font-size: 1em; margin-right: 0.6em; }
.feat { border: 1px solid #ccc; border-radius: 4px; padding: 0.4em 0.8em; margin: 0.8em 0; }
.feat h2 { font-size: 1.1em; margin: 0.2em 0; } .figs { color: #444; }
.row { display: flex; gap: 1.2em; align-items: flex-start; flex-wrap: wrap; }
.ctx { font-family: ui-monospace, monospace; font-size: 0.9em; margin: 0.3em 0; padding-left: 2.2em; flex: 1; }
.ctx li { white-space: pre-wrap; } mark { background: #ffd54a; font-weight: bold; }
.val { color: #777; } svg { flex: none; }
"""

# The page's script: builds every entry with DOM calls and textContent (never innerHTML with corpus text).
_SCRIPT = r"""
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const el = (tag, attrs, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
};
const SVG = "http://www.w3.org/2000/svg";
const svgEl = (tag, attrs) => {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
};
const fmt = (v, d) => v === null ? "n/a" : Number(v).toPrecision(d || 3);
const tokenOf = r => D.text[r].trim();
const F = D.features.map(([id, fired, density, max, mono, hist, rows, values]) =>
  ({id, fired, density, max, mono, hist, rows, values, tokens: rows.map(tokenOf)}));

function histogram(f) {
  const w = 260, h = 90, pad = 18, n = f.hist.length, top = Math.max(...f.hist, 1);
  const s = svgEl("svg", {width: w, height: h + pad, viewBox: `0 0 ${w} ${h + pad}`, role: "img"});
  const title = svgEl("title", {}); title.textContent = `activation histogram of latent ${f.id}`;
  s.append(title);
  f.hist.forEach((c, i) => {
    const bh = c ? Math.max(1, h * c / top) : 0;
    s.append(svgEl("rect", {x: i * w / n, y: h - bh, width: w / n - 1, height: bh, fill: "#4c78a8"}));
  });
  const lab = svgEl("text", {x: 0, y: h + pad - 4, "font-size": 11}); lab.textContent = "0";
  const lab2 = svgEl("text", {x: w, y: h + pad - 4, "font-size": 11, "text-anchor": "end"});
  lab2.textContent = `${fmt(f.max)} (counts up to ${top})`;
  s.append(lab, lab2);
  return s;
}

function contextItem(r, v) {
  const lo = Math.max(D.start[r], r - D.width), hi = Math.min(D.stop[r], r + D.width + 1);
  const tok = D.text[r], space = tok.startsWith(" ") ? " " : "";
  return el("li", {}, el("span", {class: "val"}, `${fmt(v)} `),
            (lo > D.start[r] ? "…" : "") + D.text.slice(lo, r).join("") + space, el("mark", {}, tok.slice(space.length)),
            D.text.slice(r + 1, hi).join("") + (hi < D.stop[r] ? "…" : ""));
}

function topTokens(f) {
  const c = new Map();
  for (const t of f.tokens) c.set(t, (c.get(t) || 0) + 1);
  return [...c.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([t, n]) => `${t} ×${n}`).join(", ");
}

function entry(f) {
  const list = el("ol", {class: "ctx"});
  let shown = 0;
  const more = el("button", {type: "button"}, "more contexts");
  const showMore = () => {
    for (const i of f.rows.keys()) if (i >= shown && i < shown + D.contexts_shown) list.append(contextItem(f.rows[i], f.values[i]));
    shown += D.contexts_shown;
    if (shown >= f.rows.length) more.remove();
  };
  more.addEventListener("click", showMore);
  const div = el("div", {class: "feat", id: `f${f.id}`},
    el("h2", {}, `latent ${f.id}`),
    el("div", {class: "figs"}, `density ${fmt(f.density)} (fires on ${f.fired} of ${D.rows} tokens) · ` +
       `monosemanticity ${fmt(f.mono)} · top tokens: ${topTokens(f)}`),
    el("div", {class: "row"}, histogram(f), list), more);
  showMore();
  return div;
}

const SORTS = {
  "index": (a, b) => a.id - b.id,
  "density, highest first": (a, b) => b.density - a.density || a.id - b.id,
  "density, lowest first": (a, b) => a.density - b.density || a.id - b.id,
  "monosemanticity, highest first": (a, b) => (b.mono ?? -1) - (a.mono ?? -1) || a.id - b.id,
  "monosemanticity, lowest first": (a, b) => (a.mono ?? 2) - (b.mono ?? 2) || a.id - b.id,
};
const q = document.getElementById("q"), sort = document.getElementById("sort");
for (const k of Object.keys(SORTS)) sort.append(el("option", {value: k}, k));
let page = 0, shown = F;

function render() {
  const list = document.getElementById("list");
  list.replaceChildren();
  const pages = Math.max(1, Math.ceil(shown.length / D.per_page));
  page = Math.min(Math.max(page, 0), pages - 1);
  for (const f of shown.slice(page * D.per_page, (page + 1) * D.per_page)) list.append(entry(f));
  document.getElementById("count").textContent = `${shown.length} of ${F.length} live latents`;
  document.getElementById("page").textContent = `page ${page + 1} of ${pages}`;
}

function update() {
  const needle = q.value.trim().toLowerCase();
  shown = F.filter(f => !needle || f.tokens.some(t => t.toLowerCase().includes(needle)));
  shown.sort(SORTS[sort.value]);
  page = 0;
  render();
}
q.addEventListener("input", update);
sort.addEventListener("change", update);
document.getElementById("prev").addEventListener("click", () => { page--; render(); });
document.getElementById("next").addEventListener("click", () => { page++; render(); });
update();
"""


def page(result: dict, title: str | None = None) -> str:
    """The browser page (HTML text) for a real-model SAE result (from `sae_run` or a run directory)."""
    data = page_data(result)
    title = title or f"Features of a TopK SAE at {result['site']} ({result['latents']} latents)"
    nm, fm = result.get("neuron_monosemanticity"), result.get("feature_monosemanticity")
    top_k = result["monosemanticity"]["top_k"]
    intro = (f"{len(data['features'])} live latents of {result['latents']}, read on {data['rows']} test-split tokens. "
             f"Monosemanticity = 1 - the normalised entropy of the tokens of a latent's {top_k} top-activating "
             f"rows (1: one token). Median over latents {_fmt(fm)}; over the model's MLP neurons at "
             f"{result.get('neuron_site')} on the same tokens {_fmt(nm)}. The search box keeps the latents whose "
             f"top-activating tokens contain the text typed.")
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p class='note'>{html.escape(intro)}</p>"
            "<div id='controls'><label>token <input id='q' type='search' placeholder='e.g. the'></label>"
            "<label>sort <select id='sort'></select></label><button id='prev' type='button'>previous</button>"
            "<span id='page'></span> <button id='next' type='button'>next</button> <span id='count'></span></div>"
            "<div id='list'></div>"
            f"<script type='application/json' id='data'>{_json_for_script(data)}</script>"
            f"<script>{_SCRIPT}</script></body></html>")


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"
