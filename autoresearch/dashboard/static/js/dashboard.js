// What every page shares: calls to the JSON API (with the session's CSRF token on writes), building DOM
// nodes from untrusted text (always as text, never as HTML), number formats and colours.
"use strict";

(function () {
  const CSRF = document.querySelector('meta[name="csrf-token"]').content;
  const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  // One call to /api/v1: resolves to the parsed JSON, or throws ApiError with the problem's detail.
  async function api(path, options = {}) {
    const method = options.method || "GET";
    const headers = { Accept: "application/json" };
    if (!SAFE.has(method)) headers["X-CSRF-Token"] = CSRF;
    let body;
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    const response = await fetch("/api/v1" + path, { method, headers, body, credentials: "same-origin" });
    const type = response.headers.get("content-type") || "";
    const data = type.includes("json") ? await response.json() : null;
    if (!response.ok) {
      let detail = data && typeof data.detail === "string" ? data.detail : response.statusText;
      if (response.status === 401) detail += " (sign in again)";
      throw new ApiError(response.status, detail);
    }
    return data;
  }

  // A DOM element; `attrs` become attributes (or properties for `dataset`, `hidden`, `className`),
  // children are nodes or strings, and strings become text nodes: data never reaches an HTML parser.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "className") node.className = value;
      else if (key === "hidden") node.hidden = true;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function setText(id, text) {
    const node = typeof id === "string" ? document.getElementById(id) : id;
    if (node) node.textContent = text === null || text === undefined ? "" : String(text);
    return node;
  }

  function showProblem(error, where) {
    const node = where || document.getElementById("problem");
    if (!node) return;
    node.textContent = error instanceof Error ? error.message : String(error);
    node.hidden = false;
  }

  function clearProblem(where) {
    const node = where || document.getElementById("problem");
    if (node) node.hidden = true;
  }

  const campaignPath = (name) => "/campaigns/" + encodeURIComponent(name);
  const trialPath = (name, number) => campaignPath(name) + "/trials/" + Number(number);

  function formatScore(value) {
    if (value === null || value === undefined) return "—";
    const number = Number(value);
    if (!Number.isFinite(number)) return String(value);
    const abs = Math.abs(number);
    if (abs !== 0 && (abs >= 1e6 || abs < 1e-3)) return number.toExponential(3);
    return String(Number(number.toPrecision(5)));
  }

  function formatSeconds(value) {
    if (value === null || value === undefined) return "—";
    const s = Number(value);
    if (s < 120) return s.toFixed(1) + " s";
    if (s < 7200) return (s / 60).toFixed(1) + " min";
    return (s / 3600).toFixed(2) + " h";
  }

  const formatInt = (value) => (value === null || value === undefined ? "—" : Number(value).toLocaleString("en"));
  const formatDollars = (value) =>
    value === null || value === undefined ? "—" : "$" + Number(value).toFixed(Number(value) < 10 ? 3 : 2);

  function formatTime(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
  }

  // Colour-blind-friendly hues (Okabe-Ito and neighbours), one per failure label and status.
  const LABEL_COLOURS = {
    patch_failed: "#E69F00",
    illegal_edit: "#CC79A7",
    crash: "#D55E00",
    timeout: "#56B4E9",
    oom: "#882255",
    disk: "#117733",
    size_cap: "#999933",
    gate_miss: "#44AA99",
    same_code: "#332288",
    worker_lost: "#7F7F7F",
    cancelled: "#BBBBBB",
  };
  const STATUS_COLOURS = {
    pending: "#E5E7EB",
    running: "#FDE68A",
    succeeded: "#0072B2",
    failed: "#D55E00",
    interrupted: "#9CA3AF",
  };
  const LABELS = Object.keys(LABEL_COLOURS);
  const TERMINAL = new Set(["succeeded", "failed", "interrupted"]);
  const STATUS_RANK = { pending: 0, running: 1, succeeded: 2, failed: 2, interrupted: 2 };

  function colourOf(node) {
    if (node.label) return LABEL_COLOURS[node.label] || "#666666";
    return STATUS_COLOURS[node.status] || "#666666";
  }

  function badge(text, kind, value) {
    const attrs = { className: "badge" + (kind === "label" ? " label" : "") };
    attrs.dataset = kind === "label" ? { label: value } : { status: value };
    return el("span", attrs, text);
  }

  window.AR = {
    ApiError,
    api,
    el,
    append,
    setText,
    showProblem,
    clearProblem,
    campaignPath,
    trialPath,
    formatScore,
    formatSeconds,
    formatInt,
    formatDollars,
    formatTime,
    LABEL_COLOURS,
    STATUS_COLOURS,
    LABELS,
    TERMINAL,
    STATUS_RANK,
    colourOf,
    badge,
  };
})();
