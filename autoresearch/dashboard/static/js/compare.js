// Two trials side by side: outcome, idea, metrics with their difference, and the diff between their code.
"use strict";

(function () {
  const AR = window.AR;
  const { api, el, setText, showProblem, formatScore, formatSeconds } = AR;

  const root = document.getElementById("page");
  const NAME = root.dataset.campaign;
  const NUMBERS = [Number(root.dataset.a), Number(root.dataset.b)];
  const BASE = "/campaigns/" + encodeURIComponent(NAME) + "/trials/";
  const pane = document.getElementById("code-diff");
  const layout = document.getElementById("diff-layout");

  const draw = () => AR.drawDiff(pane, pane.dataset.diff, pane.dataset.note, layout.value);
  layout.addEventListener("change", draw);

  function fill(side, t) {
    const card = document.querySelector('[data-side="' + side + '"]');
    const field = (name) => card.querySelector('[data-field="' + name + '"]');
    setText(field("title"), t.idea.title);
    setText(field("score"), t.status === "succeeded" ? formatScore(t.score) : t.label || t.status);
    setText(field("parent"), t.parent === null ? "—" : "#" + t.parent);
    setText(field("hypothesis"), t.idea.hypothesis);
    setText(field("duration"), formatSeconds(t.duration_s));
  }

  function metricsTable(a, b) {
    const body = document.querySelector("#metrics tbody");
    const keys = [...new Set(Object.keys(a.metrics).concat(Object.keys(b.metrics)))].sort();
    body.replaceChildren(
      ...keys.map((key) => {
        const x = a.metrics[key];
        const y = b.metrics[key];
        const delta = x !== undefined && y !== undefined ? y - x : null;
        return el(
          "tr",
          {},
          el("th", {}, key),
          el("td", { className: "num" }, formatScore(x)),
          el("td", { className: "num" }, formatScore(y)),
          el("td", { className: "num" }, delta === null ? "—" : (delta > 0 ? "+" : "") + formatScore(delta)),
        );
      }),
    );
    if (!keys.length)
      body.append(el("tr", {}, el("td", { colspan: 4, className: "muted" }, "Neither trial has metrics.")));
  }

  async function start() {
    draw();
    try {
      const [a, b] = await Promise.all(NUMBERS.map((n) => api(BASE + n)));
      fill(0, a);
      fill(1, b);
      metricsTable(a, b);
    } catch (error) {
      showProblem(error);
    }
  }

  start();
})();
