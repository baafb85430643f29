// xmodal search page: plain JavaScript, no CDN. Catalog text is always inserted with textContent (never HTML).
"use strict";
const $ = (id) => document.getElementById(id);
const state = { image: null, queryId: null, current: null, currentRank: null, filters: {}, latest: 0 };
// Each search or similar-items request takes a number; an answer to any but the latest is dropped, so a slow
// earlier answer (a filter changed, then the button pressed) never replaces the results of the latest one.
const nextRequest = () => ++state.latest;

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const key = localStorage.getItem("xmodal-key");
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

// A named index's page (/indexes/NAME/) calls that index's routes: the server puts its prefix in this meta tag.
const BASE = (document.querySelector('meta[name="xmodal-base"]') || { content: "" }).content;

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = headers(opts.headers);
  const r = await fetch(BASE + path, opts);
  const body = (r.headers.get("content-type") || "").includes("json") ? await r.json() : null;
  if (!r.ok) throw new Error((body && body.error) || r.status + " " + r.statusText);
  return body;
}

function el(tag, props, children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children || []) node.append(child);
  return node;
}

function setImage(file) {
  if (file && !file.type.startsWith("image/")) { status("That file is not an image."); return; }
  state.image = file || null;
  $("image-chip").hidden = !file;
  if (file) $("image-preview").src = URL.createObjectURL(file);
  $("image-input").value = "";
}

function status(text) { $("status").textContent = text; }

async function loadFacets() {
  try {
    const data = await api("/facets");
    const list = $("facet-list");
    list.replaceChildren();
    for (const [name, values] of Object.entries(data.attributes)) {
      if (values.length > 6 && values.every((v) => typeof v.value === "number")) { list.append(rangeFacet(name, values)); continue; }
      const select = el("select", { id: "facet-" + name, name });
      select.append(el("option", { value: "", textContent: "any" }));
      for (const v of values) {
        select.append(el("option", { value: JSON.stringify(v.value), textContent: String(v.value) + " (" + v.count + ")" }));
      }
      select.addEventListener("change", () => {
        if (select.value) state.filters[name] = JSON.parse(select.value); else delete state.filters[name];
        if ($("query").value.trim() || state.image) search();
      });
      list.append(el("div", { className: "facet" }, [el("label", { textContent: name, htmlFor: select.id }), select]));
    }
  } catch (e) { status("Could not load filters: " + e.message); }
}

function rangeFacet(name, values) {
  // Numeric attributes with many values: a min-max range instead of a list of values.
  const nums = values.map((v) => v.value);
  const box = (which, hint) => el("input", { id: "facet-" + name + "-" + which, type: "number", placeholder: hint, step: "any" });
  const lo = box("min", "min " + Math.min(...nums)), hi = box("max", "max " + Math.max(...nums));
  const update = () => {
    const cond = {};
    if (lo.value !== "") cond.gte = Number(lo.value);
    if (hi.value !== "") cond.lte = Number(hi.value);
    if (Object.keys(cond).length) state.filters[name] = cond; else delete state.filters[name];
    if ($("query").value.trim() || state.image) search();
  };
  lo.addEventListener("change", update);
  hi.addEventListener("change", update);
  return el("div", { className: "facet range" }, [el("label", { textContent: name, htmlFor: lo.id }), lo, hi]);
}

async function search() {
  const text = $("query").value.trim();
  if (!text && !state.image) { status("Type something or add an image."); return; }
  const k = Math.max(1, Math.min(100, parseInt($("k").value, 10) || 24));
  const safe = $("safe").value;  // "": the server's default level
  status("Searching…");
  const mine = nextRequest();
  try {
    let data;
    if (state.image) {
      const form = new FormData();
      form.append("image", state.image, state.image.name || "query.png");
      if (text) form.append("text", text);
      form.append("k", String(k));
      form.append("filters", JSON.stringify(state.filters));
      if (safe) form.append("safe", safe);
      data = await api("/search", { method: "POST", body: form });
    } else {
      const body = { text, k, filters: state.filters };
      if (safe) body.safe = safe;
      data = await api("/search", { method: "POST", headers: { "Content-Type": "application/json" },
                                    body: JSON.stringify(body) });
    }
    if (mine !== state.latest) return;
    state.queryId = data.query_id;
    render(data.hits, true);
    status(data.hits.length + (data.hits.length === 1 ? " result" : " results") + " in " + data.took_ms.toFixed(1) + " ms");
  } catch (e) { if (mine === state.latest) { status("Search failed: " + e.message); $("results").replaceChildren(); } }
}

function card(hit, rank, fromSearch) {
  const thumb = el("div", { className: "thumb" });
  if (hit.thumbnail_url) thumb.append(el("img", { src: hit.thumbnail_url + "?size=256", alt: hit.title || hit.id, loading: "lazy" }));
  else thumb.append(el("div", { className: "text-only", textContent: hit.text || hit.title }));
  const badges = String(hit.provenance || "").split("+").filter(Boolean).map((p) => el("span", { className: "badge", textContent: p }));
  if (hit.guard) badges.push(el("span", { className: "badge guard", textContent: "flagged", title: guardWhy(hit.guard) }));
  const where = spanText(hit.span);
  if (where) badges.push(el("span", { className: "badge span", textContent: where }));
  const meta = el("div", { className: "meta" }, [
    el("div", { className: "title", textContent: hit.title || hit.id, title: hit.title }),
    el("div", { className: "score", textContent: "score " + hit.score.toFixed(3) }),
    el("div", {}, badges),
  ]);
  const node = el("div", { className: "card", tabIndex: 0 }, [thumb, meta]);
  node.dataset.id = hit.id;
  node.dataset.score = String(hit.score);
  node.addEventListener("click", () => open(hit, rank, fromSearch));
  return node;
}

// Where a segment sits in its parent: "page 3" or "▶ 0:12–0:20".
function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = String(s % 60).padStart(2, "0");
  return h ? h + ":" + String(m).padStart(2, "0") + ":" + r : m + ":" + r;
}

function spanText(span) {
  if (!span) return "";
  if (span.page != null) return "page " + span.page;
  if (span.start == null) return "";
  return "\u25B6 " + clock(span.start) + (span.end != null ? "\u2013" + clock(span.end) : "");
}

// A player for an audio or video hit: the recording (the segment's parent) from the segment's start, with a
// media fragment (#t=start,end) and currentTime set once its metadata is known (some formats ignore #t).
async function player(hit) {
  const span = hit.span || {};
  const owner = hit.parent && span.start != null ? hit.parent : hit.id;
  const item = owner === hit.id ? hit : await api("/items/" + encodeURIComponent(owner));
  const media = item.media || {};
  const medium = media.video ? "video" : media.audio ? "audio" : null;
  if (!medium) return null;
  const start = owner === hit.id ? null : span.start;
  const end = owner === hit.id ? null : span.end;
  const fragment = start != null ? "#t=" + start + (end != null ? "," + end : "") : "";
  const node = el(medium, { controls: true, preload: "metadata", className: "player", id: "segment-player" });
  node.src = BASE + "/items/" + encodeURIComponent(owner) + "/media?medium=" + medium + fragment;
  if (start != null) {
    node.dataset.start = String(start);
    node.addEventListener("loadedmetadata", () => { if (Math.abs(node.currentTime - start) > 0.25) node.currentTime = start; }, { once: true });
  }
  return node;
}

// Add files from the page: documents, audio and video become a parent and its segments; images are items.
async function upload(files) {
  if (!files.length) return;
  const form = new FormData();
  const items = [];
  for (const f of files) {
    const image = f.type.startsWith("image/");
    items.push(image ? { id: f.name, title: f.name, image_file: f.name } : { id: f.name, title: f.name, document_file: f.name });
    form.append(image ? "images" : "documents", f, f.name);
  }
  form.append("items", JSON.stringify(items));
  status("Adding " + files.length + (files.length === 1 ? " file" : " files") + "… (audio and video are transcribed: this takes a while)");
  try {
    const r = await api("/items", { method: "POST", body: form });
    const bad = r.rejected.map((x) => x.where + ": " + x.reason).join("; ");
    status("Added " + r.added.length + (r.added.length === 1 ? " item" : " items") + (bad ? "; rejected " + bad : "."));
    loadFacets();
  } catch (e) { status("Upload failed: " + e.message); }
  $("upload-input").value = "";
}

// Why the guards flagged an item: each finding's category, rule and the text that matched.
function guardWhy(guard) {
  return (guard.findings || []).map((f) => f.category + " (" + f.rule + "): " + f.evidence).join("; ");
}

function render(hits, fromSearch) {
  $("results").replaceChildren(...hits.map((h, i) => card(h, i + 1, fromSearch)));
}

async function sendFeedback(itemId, position, event) {
  if (!state.queryId) return;
  try {
    await api("/feedback", { method: "POST", headers: { "Content-Type": "application/json" },
                             body: JSON.stringify({ query_id: state.queryId, item_id: itemId, event, position }) });
  } catch (e) { console.warn("feedback not recorded:", e.message); }
}

async function open(hit, rank, fromSearch) {
  if (fromSearch) sendFeedback(hit.id, rank, "click");
  state.current = hit.id;
  state.currentRank = fromSearch ? rank : null;
  $("like-button").classList.remove("liked");
  $("like-button").hidden = !fromSearch || !state.queryId;
  const body = $("detail-body");
  body.replaceChildren(el("p", { textContent: "Loading…" }));
  $("detail").showModal();
  try {
    const item = await api("/items/" + encodeURIComponent(hit.id));
    const rows = Object.entries(item.attributes).map(([k, v]) => el("tr", {}, [el("td", { textContent: k }), el("td", { textContent: v !== null && typeof v === "object" ? JSON.stringify(v) : String(v) })]));
    const parts = [];
    const play = await player(Object.assign({}, item, { span: hit.span || item.span, parent: hit.parent || item.parent }));
    if (play) parts.push(play);
    else if (item.media_url) parts.push(el("img", { src: item.media_url, alt: item.title || item.id }));
    const where = spanText(hit.span || item.span);
    if (where && (hit.parent || item.parent)) parts.push(el("p", { className: "score", textContent: where + " of " + (hit.parent || item.parent) }));
    parts.push(el("h2", { textContent: item.title || item.id }));
    if (item.guard && (item.guard.findings || []).length) parts.push(el("p", { className: "guard-note", textContent: "Guards: " + item.guard.status + " — " + guardWhy(item.guard) }));
    parts.push(el("p", { textContent: item.text }));
    parts.push(el("table", {}, rows));
    parts.push(el("p", { className: "score", textContent: "id " + item.id + " · " + item.modality + " · found by " + hit.provenance }));
    body.replaceChildren(...parts);
  } catch (e) { body.replaceChildren(el("p", { textContent: "Could not load the item: " + e.message })); }
}

async function similar() {
  const id = state.current;
  $("detail").close();
  status("Finding items similar to " + id + "…");
  const mine = nextRequest();
  try {
    const data = await api("/items/" + encodeURIComponent(id) + "/similar?k=" + encodeURIComponent($("k").value || "24"));
    if (mine !== state.latest) return;
    render(data.hits, false);
    status(data.hits.length + " items similar to " + id);
  } catch (e) { if (mine === state.latest) status("Similar items failed: " + e.message); }
}

function setup() {
  $("api-key").value = localStorage.getItem("xmodal-key") || "";
  $("api-key").addEventListener("change", () => { localStorage.setItem("xmodal-key", $("api-key").value.trim()); loadFacets(); });
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); search(); });
  $("image-input").addEventListener("change", () => setImage($("image-input").files[0]));
  $("image-clear").addEventListener("click", () => setImage(null));
  $("upload-input").addEventListener("change", () => upload(Array.from($("upload-input").files)));
  $("similar-button").addEventListener("click", similar);
  $("like-button").addEventListener("click", async () => {
    await sendFeedback(state.current, state.currentRank, "like");
    $("like-button").classList.add("liked");
  });
  const zone = $("dropzone");
  for (const name of ["dragenter", "dragover"]) zone.addEventListener(name, (e) => { e.preventDefault(); zone.classList.add("over"); });
  for (const name of ["dragleave", "drop"]) zone.addEventListener(name, (e) => { e.preventDefault(); zone.classList.remove("over"); });
  zone.addEventListener("drop", (e) => { const f = e.dataTransfer.files[0]; if (f) setImage(f); });
  loadFacets();
}

setup();
