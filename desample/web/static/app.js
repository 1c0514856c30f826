// desample's page: pick pictures, paint over what detection misses, clean them one after another
// through /api/clean, compare before/after, download one or all. No library, nothing from outside.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const cards = [];          // {file, el, url, mask (bool painted), result: {blob, url, name} | null, notSharing (bool: clean it without the shared stamp)}
let limits = { max_upload_mb: 30, max_pixels: 16e6 };
let busy = false;

function option(name) {
  return {
    scale: document.querySelector('input[name="scale"]:checked').value,
    denoise: $("#denoise").value,
    detect: $("#detect").checked,
    shared: $("#shared").checked,
    tta: $("#tta").checked,
  }[name];
}

function showMessage(text) {
  const m = $("#message");
  m.textContent = text || "";
  m.hidden = !text;
}

function refreshButtons() {
  $("#run").disabled = busy || cards.length === 0;
  $("#clear").disabled = busy || cards.length === 0;
  $("#download-all").disabled = busy || !cards.some((c) => c.result);
  for (const c of cards) $(".clean-one", c.el).disabled = busy;
}

function setState(card, text, progress) {
  $(".state-text", card.el).textContent = text;
  const bar = $(".bar", card.el);
  bar.hidden = progress === undefined;
  if (progress === null) bar.removeAttribute("value");  // indeterminate: the server is working
  else if (progress !== undefined) bar.value = progress;
}

function setError(card, text) {
  const e = $(".error", card.el);
  e.textContent = text || "";
  e.hidden = !text;
  card.el.classList.toggle("failed", !!text);
}

// -- painting a mask ----------------------------------------------------------------------------

function setUpPainting(card) {
  const img = $(".input", card.el), canvas = $(".paint", card.el);
  img.addEventListener("load", () => {
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    $(".size", card.el).textContent = `${img.naturalWidth}×${img.naturalHeight}`;
  });
  img.addEventListener("error", () => {
    card.el.classList.add("no-preview");
    $(".size", card.el).textContent = "no preview";
  });
  const ctx = canvas.getContext("2d");
  let last = null;
  const at = (ev) => {
    const r = canvas.getBoundingClientRect();
    return [(ev.clientX - r.left) * canvas.width / r.width, (ev.clientY - r.top) * canvas.height / r.height];
  };
  const stroke = (from, to) => {
    const r = canvas.getBoundingClientRect();
    ctx.strokeStyle = "#ff2a6d";
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.lineWidth = Number($(".brush", card.el).value) * canvas.width / r.width;
    ctx.beginPath();
    ctx.moveTo(...from);
    ctx.lineTo(...to);
    ctx.stroke();
    card.mask = true;
  };
  canvas.addEventListener("pointerdown", (ev) => {
    canvas.setPointerCapture(ev.pointerId);
    last = at(ev);
    stroke(last, last);
  });
  canvas.addEventListener("pointermove", (ev) => {
    if (!last) return;
    const p = at(ev);
    stroke(last, p);
    last = p;
  });
  const end = () => { last = null; };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $(".clear-mask", card.el).addEventListener("click", () => {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    card.mask = false;
  });
}

// The painting as the server wants it: white where painted, black elsewhere, at the picture's size.
function maskBlob(card) {
  const src = $(".paint", card.el);
  const out = document.createElement("canvas");
  out.width = src.width;
  out.height = src.height;
  const data = src.getContext("2d").getImageData(0, 0, src.width, src.height);
  for (let i = 0; i < data.data.length; i += 4) {
    const v = data.data[i + 3] > 0 ? 255 : 0;
    data.data[i] = data.data[i + 1] = data.data[i + 2] = v;
    data.data[i + 3] = 255;
  }
  out.getContext("2d").putImageData(data, 0, 0);
  return new Promise((resolve) => out.toBlob(resolve, "image/png"));
}

// -- before / after ------------------------------------------------------------------------------

function setUpCompare(card) {
  const slider = $(".slider", card.el), before = $(".before", card.el);
  const update = () => { before.style.clipPath = `inset(0 ${100 - slider.value}% 0 0)`; };
  slider.addEventListener("input", update);
  update();
  $(".edit", card.el).addEventListener("click", () => showView(card, "paint"));
}

function showView(card, view) {
  $(".paint-view", card.el).hidden = view !== "paint";
  $(".compare", card.el).hidden = view !== "compare";
  $(".edit", card.el).hidden = view !== "compare";
  $(".tools label", card.el).hidden = view !== "paint";
  $(".clear-mask", card.el).hidden = view !== "paint";
  $(".clean-one", card.el).textContent = view === "compare" ? "clean again" : "clean";
}

// -- talking to the server -------------------------------------------------------------------------

function post(url, form, onUpload) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.responseType = "blob";
    if (onUpload) xhr.upload.addEventListener("progress", (e) => e.lengthComputable && onUpload(e.loaded / e.total));
    xhr.addEventListener("load", () => resolve(xhr));
    xhr.addEventListener("error", () => resolve(null));
    xhr.send(form);
  });
}

async function errorText(xhr) {
  if (!xhr) return "the server did not answer (is `desample serve` still running?)";
  try {
    const body = JSON.parse(await xhr.response.text());
    const d = body.detail;
    return typeof d === "string" ? d : d.map((x) => `${x.loc.slice(-1)[0]}: ${x.msg}`).join("; ");
  } catch (_) {
    return `the server answered ${xhr.status}`;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// POST, and while the server is busy (503) wait as it asks and try again.
async function postPatiently(url, makeForm, onWait, onUpload) {
  for (let attempt = 0; attempt < 60; attempt++) {
    const xhr = await post(url, makeForm(), onUpload);
    if (!xhr || xhr.status !== 503) return xhr;
    const wait = Number(xhr.getResponseHeader("Retry-After") || 5);
    onWait(wait, await errorText(xhr));
    await sleep(wait * 1000);
  }
  return null;
}

function downloadName(xhr, fallback) {
  const cd = xhr.getResponseHeader("Content-Disposition") || "";
  const m = cd.match(/filename\*=UTF-8''([^;]+)/) || cd.match(/filename="([^"]+)"/);
  return m ? decodeURIComponent(m[1]) : fallback;
}

async function cleanCard(card, stamp) {
  setError(card, "");
  const tooBig = card.file.size > limits.max_upload_mb * 1024 * 1024;
  if (tooBig) {
    setError(card, `${card.file.name}: ${(card.file.size / 1048576).toFixed(1)} MB is more than the ${limits.max_upload_mb} MB this server takes`);
    setState(card, "failed");
    return false;
  }
  const mask = card.mask ? await maskBlob(card) : null;
  let started = performance.now();
  let waiting = false; // the ticker must not hide a "busy: waiting" message
  const makeForm = () => { // called once per attempt
    waiting = false;
    started = performance.now();
    const f = new FormData();
    f.append("file", card.file, card.file.name);
    f.append("scale", option("scale"));
    if (option("denoise") !== "auto") f.append("denoise", option("denoise"));
    f.append("detect", option("detect"));
    f.append("tta", option("tta"));
    if (mask) f.append("mask", mask, "mask.png");
    if (stamp) f.append("stamp", stamp, "stamp.png");
    return f;
  };
  const ticker = setInterval(() => {
    if (waiting || $(".bar", card.el).hasAttribute("value")) return;
    setState(card, `cleaning… ${((performance.now() - started) / 1000).toFixed(0)} s`, null);
  }, 500);
  setState(card, "uploading…", 0);
  const xhr = await postPatiently("/api/clean", makeForm,
    (wait, why) => { waiting = true; setState(card, `${why}: waiting ${wait} s`, null); },
    (share) => share < 1 ? setState(card, `uploading… ${Math.round(share * 100)}%`, share) : setState(card, "cleaning…", null));
  clearInterval(ticker);
  if (!xhr || xhr.status !== 200) {
    setError(card, await errorText(xhr));
    setState(card, "failed");
    return false;
  }
  if (card.result) URL.revokeObjectURL(card.result.url);
  const blob = xhr.response;
  const url = URL.createObjectURL(blob);
  const name = downloadName(xhr, `${card.file.name}_${option("scale")}x.png`);
  card.result = { blob, url, name };
  const after = $(".after", card.el), before = $(".before", card.el);
  after.src = url;
  before.src = card.url;
  await after.decode().catch(() => {});
  const link = $(".download", card.el);
  link.href = url;
  link.download = name;
  link.hidden = false;
  showView(card, "compare");
  const w = xhr.getResponseHeader("X-Output-Width"), h = xhr.getResponseHeader("X-Output-Height");
  const cover = Number(xhr.getResponseHeader("X-Stamp-Coverage") || 0);
  const secs = Number(xhr.getResponseHeader("X-Seconds") || 0);
  setState(card, `done: ${w}×${h}, stamp found on ${(cover * 100).toFixed(1)}% of the picture, ${secs.toFixed(1)} s`, 1);
  return true;
}

async function estimateStamp(list) {
  showMessage("estimating the shared stamp…");
  const xhr = await postPatiently("/api/estimate", () => {
    const f = new FormData();
    for (const c of list) f.append("files", c.file, c.file.name);
    return f;
  }, (wait, why) => showMessage(`${why}: waiting ${wait} s`));
  if (!xhr || xhr.status !== 200) {
    showMessage(`no shared stamp: ${await errorText(xhr)}. Cleaning each picture on its own.`);
    return null;
  }
  showMessage("");
  $("#stamp-preview").src = URL.createObjectURL(xhr.response);
  $("#stamp-figure").hidden = false;
  // As `clean --shared`: a stamp that explains the pictures worse than the network's own removal,
  // or leaves out most of what it finds in them, is not used (shared.why_not_used says why).
  if (xhr.getResponseHeader("X-Stamp-Explains") === "false") {
    showMessage(`the estimated stamp ${xhr.getResponseHeader("X-Stamp-Why-Not")}: cleaning each picture on its own.`);
    return null;
  }
  // Pictures that do not seem to carry the stamp (shared.not_sharing) are cleaned without it.
  const odd = (xhr.getResponseHeader("X-Stamp-Not-Sharing") || "").split(",").filter((v) => v !== "").map(Number);
  list.forEach((c, i) => { c.notSharing = odd.includes(i); });
  if (odd.length) showMessage(`${odd.map((i) => list[i].file.name).join(", ")}: no sign of the shared stamp, cleaned without it.`);
  return xhr.response;
}

async function runAll(list) {
  if (busy || list.length === 0) return;
  busy = true;
  refreshButtons();
  showMessage("");
  const row = $("#progress-row"), bar = $("#overall"), text = $("#overall-text");
  row.hidden = false;
  bar.max = list.length;
  bar.value = 0;
  let stamp = null;
  if (option("shared") && cards.length >= 2) stamp = await estimateStamp(cards);
  let failed = 0;
  for (let i = 0; i < list.length; i++) {
    text.textContent = `${i} of ${list.length} done`;
    if (!(await cleanCard(list[i], list[i].notSharing ? null : stamp))) failed++;
    bar.value = i + 1;
  }
  text.textContent = `${list.length} of ${list.length} done` + (failed ? `, ${failed} failed` : "");
  busy = false;
  refreshButtons();
}

// -- adding and removing pictures ------------------------------------------------------------------

function addFiles(files) {
  for (const file of files) {
    const el = $("#card-template").content.firstElementChild.cloneNode(true);
    const card = { file, el, url: URL.createObjectURL(file), mask: false, result: null };
    $(".name", el).textContent = file.name;
    $(".input", el).src = card.url;
    setUpPainting(card);
    setUpCompare(card);
    showView(card, "paint");
    $(".clean-one", el).addEventListener("click", () => runAll([card]));
    $(".remove", el).addEventListener("click", () => removeCard(card));
    $("#cards").appendChild(el);
    cards.push(card);
  }
  refreshButtons();
}

function removeCard(card) {
  if (busy) return;
  URL.revokeObjectURL(card.url);
  if (card.result) URL.revokeObjectURL(card.result.url);
  card.el.remove();
  cards.splice(cards.indexOf(card), 1);
  refreshButtons();
}

async function downloadAll() {
  const done = cards.filter((c) => c.result);
  const used = new Set();
  const entries = [];
  for (const c of done) {
    let name = c.result.name;
    for (let k = 2; used.has(name); k++) name = c.result.name.replace(/\.png$/, `_${k}.png`);
    used.add(name);
    entries.push({ name, bytes: new Uint8Array(await c.result.blob.arrayBuffer()) });
  }
  const a = document.createElement("a");
  a.href = URL.createObjectURL(makeZip(entries));
  a.download = "desample.zip";
  document.body.appendChild(a);
  a.click();
  a.remove();
}

function setUpPage() {
  const drop = $("#drop"), input = $("#files");
  input.addEventListener("change", () => { addFiles(input.files); input.value = ""; });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    addFiles(e.dataTransfer.files);
  });
  $("#run").addEventListener("click", () => runAll(cards.slice()));
  $("#download-all").addEventListener("click", downloadAll);
  $("#clear").addEventListener("click", () => cards.slice().forEach(removeCard));
  fetch("/api/info").then((r) => r.json()).then((info) => {
    limits = info.limits;
    $("#limit-mb").textContent = limits.max_upload_mb;
    $("#limit-mp").textContent = (limits.max_pixels / 1e6).toFixed(0);
  }).catch(() => showMessage("the server does not answer: start it with `desample serve`"));
  refreshButtons();
}

setUpPage();
