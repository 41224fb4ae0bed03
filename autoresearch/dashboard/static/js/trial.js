// A trial in full: its idea, its code against its parent and the baseline, metrics and training curve,
// every implementation attempt, the LLM calls behind it, its log tail; pins and vetoes for writers.
"use strict";

(function () {
  const AR = window.AR;
  const { api, el, setText, showProblem, formatScore, formatInt, formatDollars, formatSeconds } = AR;

  const root = document.getElementById("page");
  const NAME = root.dataset.campaign;
  const NUMBER = Number(root.dataset.number);
  const BASE = "/campaigns/" + encodeURIComponent(NAME) + "/trials/" + NUMBER;
  const layout = document.getElementById("diff-layout");
  let trial = null;

  function renderFlags(t) {
    const flags = [t.pinned ? "pinned" : null, t.vetoed ? "vetoed" : null].filter(Boolean);
    setText("flags", flags.join(", "));
  }

  function renderHeader(t) {
    setText("score", t.score === null ? "" : "score " + formatScore(t.score));
    renderFlags(t);
    setText("idea-title", t.idea.title);
    const lineage = document.getElementById("lineage");
    lineage.replaceChildren();
    t.lineage.forEach((number, i) => {
      if (i) lineage.append(" → ");
      lineage.append(
        number === t.number
          ? el("strong", {}, "#" + number)
          : el("a", { href: AR.trialPath(NAME, number) }, "#" + number),
      );
    });
    const facts = [
      "seed " + t.seed,
      t.worker ? "worker " + t.worker : null,
      "ran " + formatSeconds(t.duration_s),
      t.started_at ? "started " + AR.formatTime(t.started_at) : null,
      t.finished_at ? "finished " + AR.formatTime(t.finished_at) : null,
      t.exit_code !== null ? "exit code " + t.exit_code : null,
      t.retry_of !== null ? "reruns trial " + t.retry_of : null,
    ];
    setText("run-facts", facts.filter(Boolean).join(" · "));
  }

  function renderIdea(t) {
    const idea = t.idea;
    setText("hypothesis", idea.hypothesis);
    setText("rationale", idea.rationale || "—");
    setText("origin", [idea.origin, idea.surface, idea.key].filter(Boolean).join(" · "));
    setText("analysis", t.analysis || "—");
    setText("reason", t.reason || (t.status === "succeeded" ? "scored " + formatScore(t.score) : t.status));
  }

  function renderMetrics(t) {
    const body = document.querySelector("#metrics tbody");
    const entries = Object.entries(t.metrics).sort(([a], [b]) => a.localeCompare(b));
    body.replaceChildren(
      ...entries.map(([key, value]) =>
        el("tr", {}, el("th", {}, key), el("td", { className: "num" }, formatScore(value))),
      ),
    );
    if (!entries.length) body.append(el("tr", {}, el("td", { className: "muted" }, "No metric recorded.")));

    const curve = document.getElementById("curve");
    if (!t.curve.length) {
      curve.replaceChildren(el("p", { className: "small muted" }, "No training curve recorded."));
      return;
    }
    const keys = [...new Set(t.curve.flatMap((point) => Object.keys(point)))];
    const xKey = keys.includes("step") ? "step" : null;
    const ys = keys.filter((k) => k !== xKey);
    const xs = t.curve.map((point, i) => (xKey ? point[xKey] : i));
    const palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"];
    const series = [{ label: xKey || "point" }].concat(
      ys.map((key, i) => ({
        label: key,
        stroke: palette[i % palette.length],
        width: 1.5,
        value: (u, v) => formatScore(v),
        scale: i ? "other" : "y",
      })),
    );
    const data = [xs].concat(ys.map((key) => t.curve.map((point) => (key in point ? point[key] : null))));
    new uPlot(
      {
        width: Math.max(320, curve.clientWidth || 800),
        height: 240,
        scales: { x: { time: false } },
        axes: [{ label: xKey || "point" }, { label: ys[0] || "", size: 60 }].concat(
          ys.length > 1 ? [{ scale: "other", side: 1, size: 60, grid: { show: false } }] : [],
        ),
        series,
      },
      data,
      curve,
    );
  }

  function renderPatches(t) {
    const list = document.getElementById("patches");
    list.replaceChildren();
    if (!t.patches.length) list.append(el("li", { className: "muted" }, "No implementation attempt recorded."));
    for (const patch of t.patches) {
      const verdict = patch.accepted ? "accepted" : patch.applied ? "applied, then rejected" : "did not apply";
      const pane = el("div", { className: "diff-pane" });
      const details = el("details", {}, el("summary", {}, "the diff"), pane);
      details.addEventListener("toggle", () => {
        if (details.open && !pane.childElementCount)
          AR.drawDiff(pane, patch.diff, "The attempt carried no diff.", layout.value);
      });
      list.append(
        el(
          "li",
          { dataset: { attempt: patch.attempt } },
          el(
            "div",
            {},
            el("strong", {}, "attempt " + patch.attempt),
            ": ",
            verdict,
            patch.files.length ? " · " + patch.files.join(", ") : "",
          ),
          patch.error ? el("pre", { className: "error" }, patch.error) : null,
          details,
        ),
      );
    }
  }

  function renderCalls(t) {
    const body = document.querySelector("#llm-calls tbody");
    body.replaceChildren(
      ...t.llm_calls.map((call) =>
        el(
          "tr",
          {},
          el("td", {}, call.role),
          el("td", {}, call.model),
          el("td", {}, call.template),
          el("td", { className: "num" }, formatInt(call.usage.input_tokens)),
          el("td", { className: "num" }, formatInt(call.usage.output_tokens)),
          el("td", { className: "num" }, call.usage.unpriced_calls ? "unpriced" : formatDollars(call.usage.dollars)),
          el("td", { className: "num" }, Number(call.duration_s).toFixed(1)),
          el("td", { className: "num" }, String(call.attempts)),
          el("td", { className: "error-cell" }, call.error),
        ),
      ),
    );
    if (!t.llm_calls.length)
      body.append(
        el(
          "tr",
          {},
          el("td", { colspan: 9, className: "muted" }, "No LLM call: the idea came from the catalog or a person."),
        ),
      );
  }

  // ---- code ------------------------------------------------------------------------------------
  const panes = {
    parent: document.querySelector('[data-diff-pane="parent"]'),
    baseline: document.querySelector('[data-diff-pane="baseline"]'),
  };

  function drawPanes() {
    const parent = panes.parent;
    AR.drawDiff(parent, parent.dataset.diff, parent.dataset.note, layout.value);
    if (trial) {
      let note = "The same code as the baseline.";
      if (trial.lineage.length <= 1) note = "The baseline itself.";
      else if (trial.label === "patch_failed" || trial.label === "illegal_edit")
        note = "No code: its patch was never applied.";
      AR.drawDiff(panes.baseline, trial.diff, trial.diff ? "" : note, layout.value);
    }
  }

  for (const tab of document.querySelectorAll("[data-diff-tab]")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll("[data-diff-tab]"))
        other.setAttribute("aria-selected", String(other === tab));
      for (const [name, pane] of Object.entries(panes)) pane.hidden = name !== tab.dataset.diffTab;
    });
  }
  layout.addEventListener("change", drawPanes);

  // ---- pins and vetoes -------------------------------------------------------------------------
  for (const button of document.querySelectorAll("[data-flag]")) {
    button.addEventListener("click", async () => {
      const output = document.getElementById("flag-result");
      try {
        const summary = await api(BASE + "/" + button.dataset.flag, { method: "POST" });
        renderFlags(summary);
        output.textContent = "done";
      } catch (error) {
        output.textContent = error.message;
      }
    });
  }

  async function start() {
    drawPanes(); // the diff against the parent came with the page
    try {
      trial = await api(BASE);
      renderHeader(trial);
      renderIdea(trial);
      drawPanes();
      renderMetrics(trial);
      renderPatches(trial);
      renderCalls(trial);
      setText("log-tail", trial.log_tail || "(empty)");
      if (trial.bundle && trial.bundle.startsWith("/api/v1/")) {
        const link = document.getElementById("bundle");
        link.href = trial.bundle;
        link.hidden = false;
      }
    } catch (error) {
      showProblem(error);
    }
  }

  start();
})();
