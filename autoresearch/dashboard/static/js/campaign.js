// The campaign page. One lineage request gives every trial's number, parent, status, label and score:
// the charts, the label breakdown and the graph are all drawn from it. The table pages through the API
// with its cursor, and the event stream keeps all of them current without a reload.
"use strict";

(function () {
  const AR = window.AR;
  const { api, el, setText, showProblem, formatScore, formatInt, formatDollars, formatSeconds } = AR;

  const root = document.getElementById("page");
  const NAME = root.dataset.campaign;
  const BASE = "/campaigns/" + encodeURIComponent(NAME);
  const CAN_WRITE = root.dataset.canWrite === "true";
  const DAG_STEP = 300; // the graph shows the best DAG_STEP scored trials (and their ancestors), then more
  const FETCH_ONE_BY_ONE = 25; // more finished trials than this at once: read the lineage again instead

  const state = {
    detail: null,
    direction: "minimize",
    metric: "score",
    nodes: new Map(), // number -> lineage node
    dagLimit: DAG_STEP,
    dagShown: new Set(),
    cy: null,
    scoreChart: null,
    stripChart: null,
    stripLabels: "",
  };

  // ---- helpers ---------------------------------------------------------------------------------
  const sortedNodes = () => [...state.nodes.values()].sort((a, b) => a.number - b.number);
  const isScored = (n) => n.status === "succeeded" && n.score !== null && n.score !== undefined;
  const better = (a, b) => (state.direction === "maximize" ? a > b : a < b);

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  }

  // ---- summary cards ---------------------------------------------------------------------------
  function renderDetail(detail) {
    state.detail = detail;
    if (detail.direction) state.direction = detail.direction;
    const status = document.getElementById("campaign-status");
    status.textContent = detail.status;
    status.dataset.status = detail.status;
    setText("direction", (state.direction === "maximize" ? "higher" : "lower") + " " + state.metric + " is better");

    const counts = document.getElementById("counts");
    counts.replaceChildren();
    for (const [name, count] of Object.entries(detail.counts)) {
      counts.append(
        el("dt", {}, AR.badge(name, "status", name)),
        el("dd", { dataset: { count: name } }, formatInt(count)),
      );
    }

    const budget = document.getElementById("budget");
    budget.replaceChildren(
      el(
        "div",
        {},
        "trials ",
        el("strong", {}, formatInt(detail.trials_counted)),
        " of ",
        formatInt(detail.trial_budget),
      ),
      el("progress", {
        max: Math.max(1, detail.trial_budget),
        value: Math.min(detail.trials_counted, detail.trial_budget),
      }),
      el("div", { className: "small muted" }, "concurrency " + detail.concurrency),
    );
    const total = detail.llm ? detail.llm.total : null;
    const limits = detail.agents ? detail.agents.budget : { dollars: null, tokens: null };
    if (total && (total.calls > 0 || detail.agents)) {
      budget.append(
        el(
          "div",
          {},
          "LLM tokens ",
          el("strong", {}, formatInt(total.tokens)),
          limits.tokens ? " of " + formatInt(limits.tokens) : "",
        ),
        el(
          "div",
          {},
          "LLM dollars ",
          el("strong", {}, formatDollars(total.dollars)),
          limits.dollars ? " of " + formatDollars(limits.dollars) : "",
        ),
        el(
          "div",
          { className: "small muted" },
          formatInt(total.calls) + " calls" + (total.unpriced_calls ? ", " + total.unpriced_calls + " unpriced" : ""),
        ),
      );
      if (limits.dollars)
        budget.append(el("progress", { max: limits.dollars, value: Math.min(total.dollars, limits.dollars) }));
    } else {
      budget.append(el("div", { className: "small muted" }, "no LLM: ideas come from the catalog"));
    }
    if (detail.gpu_hours !== undefined && detail.gpu_hours !== null) {
      budget.append(el("div", {}, "GPU-hours ", el("strong", {}, Number(detail.gpu_hours).toFixed(2))));
    }

    const best = document.getElementById("best");
    if (detail.best) {
      const b = detail.best;
      const node = state.nodes.get(b.number);
      best.replaceChildren(
        el("div", { className: "big" }, formatScore(b.score)),
        el("a", { href: AR.trialPath(NAME, b.number) }, "trial " + b.number),
        node && node.title ? el("div", { className: "small" }, node.title) : null,
      );
    }
    const form = document.getElementById("budget-form");
    if (form) {
      form.elements.trials.placeholder = detail.trial_budget;
      form.elements.concurrency.placeholder = detail.concurrency;
      if (detail.agents) {
        form.elements.max_dollars.placeholder = detail.agents.budget.dollars ?? "";
        form.elements.max_tokens.placeholder = detail.agents.budget.tokens ?? "";
      }
    }
  }

  const refreshDetail = debounce(async () => {
    try {
      renderDetail(await api(BASE));
    } catch (error) {
      showProblem(error);
    }
  }, 500);

  // ---- charts ----------------------------------------------------------------------------------
  function chartWidth(id) {
    return Math.max(320, document.getElementById(id).clientWidth || 800);
  }

  function scoreData() {
    const nodes = sortedNodes();
    const xs = [];
    const scores = [];
    const best = [];
    let bestSoFar = null;
    for (const n of nodes) {
      xs.push(n.number);
      const scored = isScored(n);
      scores.push(scored ? n.score : null);
      // Races and confirmations re-measure a program: the search's best so far is read from search trials.
      if (scored && n.role === "search" && (bestSoFar === null || better(n.score, bestSoFar))) bestSoFar = n.score;
      best.push(bestSoFar);
    }
    return [xs, scores, best];
  }

  function failureLabels() {
    const present = new Set();
    for (const n of state.nodes.values()) if (n.label) present.add(n.label);
    return AR.LABELS.filter((l) => present.has(l));
  }

  function stripData(labels) {
    const nodes = sortedNodes();
    const data = [nodes.map((n) => n.number)];
    labels.forEach((label, row) => data.push(nodes.map((n) => (n.label === label ? row : null))));
    return data;
  }

  function drawCharts() {
    const container = document.getElementById("score-chart");
    const data = scoreData();
    if (!state.scoreChart) {
      state.scoreChart = new uPlot(
        {
          width: chartWidth("score-chart"),
          height: 280,
          cursor: { sync: { key: "trials" } },
          scales: { x: { time: false } },
          axes: [{ label: "trial" }, { label: state.metric, size: 70 }],
          series: [
            { label: "trial" },
            {
              label: "score",
              stroke: AR.STATUS_COLOURS.succeeded,
              paths: () => null,
              points: { show: true, size: 6, fill: AR.STATUS_COLOURS.succeeded },
              value: (u, v) => formatScore(v),
            },
            {
              label: "best so far",
              stroke: "#009E73",
              width: 2,
              spanGaps: true,
              paths: uPlot.paths.stepped({ align: 1 }),
              points: { show: false },
              value: (u, v) => formatScore(v),
            },
          ],
        },
        data,
        container,
      );
    } else {
      state.scoreChart.setData(data);
    }

    const labels = failureLabels();
    const strip = document.getElementById("failure-strip");
    const key = labels.join(",");
    if (state.stripChart && key === state.stripLabels) {
      state.stripChart.setData(stripData(labels));
      return;
    }
    if (state.stripChart) state.stripChart.destroy();
    state.stripChart = null;
    state.stripLabels = key;
    strip.replaceChildren();
    if (!labels.length) {
      strip.append(el("p", { className: "small muted" }, "No failed trial."));
      return;
    }
    state.stripChart = new uPlot(
      {
        width: chartWidth("failure-strip"),
        height: 60 + 22 * labels.length,
        cursor: { sync: { key: "trials" }, y: false },
        scales: { x: { time: false }, y: { auto: false, range: [-0.5, labels.length - 0.5] } },
        axes: [
          { label: "failed trials" },
          { size: 90, splits: () => labels.map((_, i) => i), values: () => labels, grid: { show: false } },
        ],
        series: [{ label: "trial" }].concat(
          labels.map((label) => ({
            label,
            stroke: AR.LABEL_COLOURS[label],
            paths: () => null,
            points: { show: true, size: 7, fill: AR.LABEL_COLOURS[label] },
            value: (u, v) => (v === null ? "" : label),
          })),
        ),
      },
      stripData(labels),
      strip,
    );
  }

  window.addEventListener(
    "resize",
    debounce(() => {
      if (state.scoreChart) state.scoreChart.setSize({ width: chartWidth("score-chart"), height: 280 });
      if (state.stripChart)
        state.stripChart.setSize({ width: chartWidth("failure-strip"), height: state.stripChart.height });
    }, 200),
  );

  // ---- failure labels --------------------------------------------------------------------------
  function drawLabels() {
    const counts = new Map();
    let finished = 0;
    for (const n of state.nodes.values()) {
      if (AR.TERMINAL.has(n.status)) finished += 1;
      if (n.label) counts.set(n.label, (counts.get(n.label) || 0) + 1);
    }
    const body = document.querySelector("#labels tbody");
    body.replaceChildren();
    if (!counts.size) {
      body.append(el("tr", {}, el("td", { colspan: 3, className: "muted" }, "No failed trial.")));
      return;
    }
    const most = Math.max(...counts.values());
    for (const label of AR.LABELS.filter((l) => counts.has(l))) {
      const count = counts.get(label);
      const bar = el("span", { className: "bar" });
      bar.style.width = ((100 * count) / most).toFixed(1) + "%";
      bar.style.backgroundColor = AR.LABEL_COLOURS[label];
      body.append(
        el(
          "tr",
          { dataset: { label } },
          el("td", {}, AR.badge(label, "label", label)),
          el(
            "td",
            { className: "num" },
            formatInt(count),
            el("span", { className: "muted small" }, " (" + ((100 * count) / Math.max(1, finished)).toFixed(0) + "%)"),
          ),
          el("td", { className: "bar-cell" }, bar),
        ),
      );
    }
  }

  // ---- lineage graph ---------------------------------------------------------------------------
  // At most `dagLimit` trials: the baseline, then the best (scored ones by score, then the rest newest
  // first), each with as many of its ancestors as still fit. An ancestor left out becomes a dashed edge
  // that says how many generations it skips, so deep lineages stay readable and quick to lay out.
  function dagSelection() {
    const scored = [];
    const rest = [];
    for (const n of state.nodes.values()) (isScored(n) ? scored : rest).push(n);
    scored.sort((a, b) => (state.direction === "maximize" ? b.score - a.score : a.score - b.score));
    rest.sort((a, b) => b.number - a.number);
    const chosen = new Set();
    for (const n of state.nodes.values()) if (n.parent === null) chosen.add(n.number);
    for (const n of scored.concat(rest)) {
      if (chosen.size >= state.dagLimit) break;
      const chain = [];
      for (let c = n; c && !chosen.has(c.number); c = c.parent === null ? null : state.nodes.get(c.parent))
        chain.push(c.number);
      const fits = chosen.size + chain.length <= state.dagLimit ? chain : chain.slice(0, 1);
      for (const number of fits) chosen.add(number);
    }
    return chosen;
  }

  // The nearest ancestor on show, and how many generations lie between.
  function shownAncestor(n, chosen) {
    let skipped = 0;
    for (let c = state.nodes.get(n.parent); c; c = c.parent === null ? null : state.nodes.get(c.parent)) {
      if (chosen.has(c.number)) return { number: c.number, skipped };
      skipped += 1;
    }
    return null;
  }

  // Rank among scored trials, 1 for the best and 0 for the worst: robust to outliers, unlike raw scores.
  function goodness() {
    const scored = [...state.nodes.values()].filter(isScored);
    scored.sort((a, b) => (state.direction === "maximize" ? a.score - b.score : b.score - a.score));
    const ranks = new Map();
    scored.forEach((n, i) => ranks.set(n.number, scored.length > 1 ? i / (scored.length - 1) : 1));
    return ranks;
  }

  function nodeData(n, ranks) {
    const best = state.detail && state.detail.best && state.detail.best.number === n.number;
    return {
      id: String(n.number),
      number: n.number,
      label: "#" + n.number,
      colour: AR.colourOf(n),
      scored: ranks.has(n.number),
      goodness: ranks.has(n.number) ? ranks.get(n.number) : 0,
      pinned: !!n.pinned,
      vetoed: !!n.vetoed,
      best: !!best,
    };
  }

  function dagStyle() {
    const byScore = document.getElementById("dag-colour").value === "score";
    const style = [
      {
        selector: "node",
        style: {
          "background-color": "data(colour)",
          label: "data(label)",
          "font-size": 8,
          "text-valign": "center",
          "text-halign": "center",
          color: "#111",
          "text-outline-color": "#fff",
          "text-outline-width": 1,
          shape: "round-rectangle",
          width: 36,
          height: 20,
          "border-width": 1,
          "border-color": "#555",
        },
      },
      {
        selector: "edge",
        style: {
          width: 1,
          "line-color": "#b8b8b8",
          "curve-style": "bezier",
          "target-arrow-shape": "triangle",
          "target-arrow-color": "#b8b8b8",
          "arrow-scale": 0.6,
        },
      },
      {
        selector: "edge[skipped > 0]",
        style: {
          "line-style": "dashed",
          label: "data(label)",
          "font-size": 7,
          color: "#6e7781",
          "text-background-color": "#fff",
          "text-background-opacity": 1,
        },
      },
      { selector: "node[?pinned]", style: { "border-width": 3, "border-color": "#6D28D9" } },
      { selector: "node[?vetoed]", style: { shape: "octagon", "border-style": "dashed" } },
      { selector: "node[?best]", style: { "border-width": 4, "border-color": "#F59E0B", width: 42, height: 26 } },
    ];
    if (byScore) {
      style.splice(2, 0, {
        selector: "node[?scored]",
        style: { "background-color": "mapData(goodness, 0, 1, #FDE68A, #065F46)" },
      });
      style.splice(3, 0, { selector: "node[!scored]", style: { "background-opacity": 0.35 } });
    }
    return style;
  }

  function drawDag() {
    const chosen = dagSelection();
    state.dagShown = chosen;
    const ranks = goodness();
    const elements = [];
    for (const number of [...chosen].sort((a, b) => a - b)) {
      const n = state.nodes.get(number);
      elements.push({ group: "nodes", data: nodeData(n, ranks) });
      const up = n.parent === null ? null : shownAncestor(n, chosen);
      if (up) {
        const data = {
          id: up.number + "-" + n.number,
          source: String(up.number),
          target: String(n.number),
          skipped: up.skipped,
        };
        if (up.skipped) data.label = "+" + up.skipped;
        elements.push({ group: "edges", data });
      }
    }
    if (state.cy) state.cy.destroy();
    state.cy = cytoscape({
      container: document.getElementById("dag"),
      elements,
      style: dagStyle(),
      layout: { name: "dagre", rankDir: "TB", nodeSep: 6, rankSep: 36, animate: false },
      minZoom: 0.05,
      maxZoom: 3,
      wheelSensitivity: 0.3,
    });
    // A deep lineage fitted whole is too small to read: then show the best trial at a readable size.
    if (state.cy.zoom() < 0.5) {
      const best = state.cy.nodes("[?best]");
      state.cy.zoom(0.9);
      state.cy.center(best.nonempty() ? best : state.cy.nodes().roots());
    }
    state.cy.on("tap", "node", (event) => {
      window.location.assign(AR.trialPath(NAME, event.target.data("number")));
    });
    state.cy.on("mouseover", "node", (event) => {
      const n = state.nodes.get(event.target.data("number"));
      if (!n) return;
      const parts = ["#" + n.number, n.title || "", n.status + (n.label ? " (" + n.label + ")" : "")];
      if (isScored(n)) parts.push("score " + formatScore(n.score));
      setText("dag-hover", parts.filter(Boolean).join(" · "));
    });
    const total = state.nodes.size;
    setText(
      "dag-shown",
      chosen.size >= total
        ? "all " + formatInt(total) + " trials"
        : formatInt(chosen.size) +
            " of " +
            formatInt(total) +
            " trials: the best and as many of their ancestors as fit; a dashed edge skips generations",
    );
    document.getElementById("dag-more").hidden = chosen.size >= total;
    document.getElementById("dag-redraw").hidden = true;
  }

  // Recolour the trials on show; a trial not on show yet waits for a redraw (a layout is not cheap).
  function updateDag() {
    if (!state.cy) return;
    const ranks = goodness();
    let unseen = false;
    state.cy.batch(() => {
      for (const n of state.nodes.values()) {
        const node = state.cy.getElementById(String(n.number));
        if (node.nonempty()) node.data(nodeData(n, ranks));
        else unseen = true;
      }
    });
    if (unseen) document.getElementById("dag-redraw").hidden = false;
  }

  document.getElementById("dag-more").addEventListener("click", () => {
    state.dagLimit += DAG_STEP;
    drawDag();
  });
  document.getElementById("dag-redraw").addEventListener("click", drawDag);
  document.getElementById("dag-colour").addEventListener("change", () => {
    if (state.cy) state.cy.style(dagStyle());
  });

  // ---- trials table ----------------------------------------------------------------------------
  const table = { cursors: [null], index: 0, next: null, filterKey: "" };
  const filterForm = document.getElementById("trial-filter");

  function filterParams() {
    const params = new URLSearchParams();
    for (const name of ["status", "label", "min_score", "max_score", "sort", "limit"]) {
      const value = filterForm.elements[name].value.trim();
      if (value) params.set(name, value);
    }
    return params;
  }

  function trialRow(t) {
    const node = state.nodes.get(t.number);
    const flags = [t.pinned ? "pinned" : null, t.vetoed ? "vetoed" : null].filter(Boolean).join(", ");
    const row = el(
      "tr",
      { dataset: { number: t.number } },
      el("td", { className: "num" }, el("a", { href: AR.trialPath(NAME, t.number) }, String(t.number))),
      el("td", { className: "title-cell" }, node ? node.title : ""),
      el("td", { dataset: { cell: "status" } }, AR.badge(t.status, "status", t.status)),
      el("td", { dataset: { cell: "label" } }, t.label ? AR.badge(t.label, "label", t.label) : ""),
      el("td", { className: "num", dataset: { cell: "score" } }, formatScore(t.score)),
      el(
        "td",
        { className: "num" },
        t.parent === null ? "—" : el("a", { href: AR.trialPath(NAME, t.parent) }, String(t.parent)),
      ),
      el("td", { dataset: { cell: "flags" } }, flags),
      el("td", { className: "num", dataset: { cell: "duration" } }, formatSeconds(t.duration_s)),
    );
    row.summary = t; // what a live update starts from
    return row;
  }

  async function loadPage(index) {
    const params = filterParams();
    const after = table.cursors[index];
    if (after) params.set("after", after);
    try {
      const page = await api(BASE + "/trials?" + params.toString());
      const body = document.querySelector("#trials tbody");
      body.replaceChildren(...page.items.map(trialRow));
      if (!page.items.length)
        body.append(el("tr", {}, el("td", { colspan: 8, className: "muted" }, "No trial matches.")));
      table.index = index;
      table.next = page.next;
      table.cursors[index + 1] = page.next;
      table.cursors.length = index + 2;
      setText("page-info", "page " + (index + 1));
      document.getElementById("page-prev").disabled = index === 0;
      document.getElementById("page-first").disabled = index === 0;
      document.getElementById("page-next").disabled = !page.next;
    } catch (error) {
      showProblem(error);
    }
  }

  filterForm.addEventListener("submit", (event) => {
    event.preventDefault();
    table.cursors = [null];
    loadPage(0);
  });
  document.getElementById("page-next").addEventListener("click", () => table.next && loadPage(table.index + 1));
  document.getElementById("page-prev").addEventListener("click", () => table.index > 0 && loadPage(table.index - 1));
  document.getElementById("page-first").addEventListener("click", () => loadPage(0));

  // Refresh the rows on show in place; the newest-first first page also takes new trials in.
  const reloadFirstPage = debounce(() => loadPage(0), 800);
  function updateTable(numbers, added) {
    for (const number of numbers) {
      const row = document.querySelector('#trials tbody tr[data-number="' + Number(number) + '"]');
      const n = state.nodes.get(number);
      if (!row || !n) continue;
      row.replaceWith(trialRow(Object.assign({}, row.summary, summaryOf(n))));
    }
    const plain = filterParams();
    plain.delete("limit");
    const newestFirst = (plain.get("sort") || "-number") === "-number" && [...plain.keys()].length <= 1;
    if (added && table.index === 0 && newestFirst) reloadFirstPage();
  }

  function summaryOf(n) {
    const summary = {};
    for (const key of ["number", "parent", "status", "label", "score", "pinned", "vetoed", "duration_s"]) {
      if (n[key] !== undefined) summary[key] = n[key];
    }
    return summary;
  }

  // ---- live updates ----------------------------------------------------------------------------
  const pending = new Map(); // number -> newest status seen on the stream
  function listen(after) {
    const live = document.getElementById("live");
    const source = new EventSource("/api/v1" + BASE + "/events?after=" + encodeURIComponent(after));
    source.addEventListener("open", () => {
      live.textContent = "live";
      live.dataset.state = "live";
    });
    source.addEventListener("error", () => {
      live.textContent = source.readyState === EventSource.CLOSED ? "not live: reload the page" : "reconnecting…";
      live.dataset.state = "down";
    });
    source.addEventListener("trial", (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      const known = state.nodes.get(data.number);
      const seen = pending.get(data.number);
      // The stream replays from the start: only a state later than the one already held is news.
      const held = seen || (known ? known.status : null);
      if (held !== null && AR.STATUS_RANK[data.status] <= AR.STATUS_RANK[held]) return;
      pending.set(data.number, data.status);
      applyEvents();
    });
  }

  const applyEvents = debounce(async () => {
    const batch = new Map(pending);
    pending.clear();
    let added = false;
    const finished = [];
    for (const [number, status] of batch) {
      let n = state.nodes.get(number);
      if (!n) {
        added = true;
        n = {
          number,
          parent: null,
          status,
          label: null,
          score: null,
          title: "",
          origin: "",
          pinned: false,
          vetoed: false,
        };
        state.nodes.set(number, n);
        finished.push(number); // read it whole: its parent and title
      } else {
        n.status = status;
        if (AR.TERMINAL.has(status)) finished.push(number);
      }
    }
    try {
      if (finished.length > FETCH_ONE_BY_ONE) {
        await loadLineage();
      } else {
        await Promise.all(finished.map(refreshNode));
      }
    } catch (error) {
      showProblem(error);
    }
    drawCharts();
    drawLabels();
    updateDag();
    updateTable([...batch.keys()], added);
    refreshDetail();
  }, 300);

  async function refreshNode(number) {
    const t = await api(BASE + "/trials/" + Number(number));
    const n = state.nodes.get(number) || { number };
    Object.assign(n, {
      parent: t.parent,
      status: t.status,
      label: t.label,
      score: t.score,
      pinned: t.pinned,
      vetoed: t.vetoed,
      duration_s: t.duration_s,
      title: t.idea ? t.idea.title : n.title,
      origin: t.idea ? t.idea.origin : n.origin,
    });
    state.nodes.set(number, n);
  }

  async function loadLineage() {
    const lineage = await api(BASE + "/lineage");
    const nodes = new Map();
    for (const n of lineage.nodes) nodes.set(n.number, Object.assign(state.nodes.get(n.number) || {}, n));
    state.nodes = nodes;
  }

  // ---- steering --------------------------------------------------------------------------------
  function numbersOf(form, names) {
    const body = {};
    for (const name of names) {
      const value = form.elements[name].value.trim();
      if (value !== "") body[name] = Number(value);
    }
    return body;
  }

  function wireSteering() {
    const result = document.getElementById("steer-result");
    for (const button of document.querySelectorAll("#steer [data-action]")) {
      button.addEventListener("click", async () => {
        const action = button.dataset.action;
        try {
          const campaign = await api(BASE + "/" + action, { method: "POST" });
          result.textContent = "campaign is " + campaign.status;
          refreshDetail();
        } catch (error) {
          result.textContent = error.message;
        }
      });
    }

    const budgetForm = document.getElementById("budget-form");
    budgetForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const output = document.getElementById("budget-result");
      const body = numbersOf(budgetForm, ["trials", "concurrency", "max_dollars", "max_tokens"]);
      if (!Object.keys(body).length) {
        output.textContent = "nothing to change";
        return;
      }
      try {
        renderDetail(await api(BASE, { method: "PATCH", body }));
        budgetForm.reset();
        output.textContent = "saved";
      } catch (error) {
        output.textContent = error.message;
      }
    });

    const ideaForm = document.getElementById("idea-form");
    ideaForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const output = document.getElementById("idea-result");
      const body = {
        hypothesis: ideaForm.elements.hypothesis.value,
        parent: Number(ideaForm.elements.parent.value || 0),
        surface: ideaForm.elements.surface.value.trim(),
        rationale: ideaForm.elements.rationale.value,
        diff: ideaForm.elements.diff.value,
      };
      try {
        const idea = await api(BASE + "/ideas", { method: "POST", body });
        output.textContent = "seeded idea " + idea.id + ": it waits for the controller";
        ideaForm.reset();
        const details = document.getElementById("ideas");
        if (details.open) await loadIdeas();
        else details.open = true; // opening loads the list
      } catch (error) {
        output.textContent = error.message;
      }
    });
  }

  // ---- ideas -----------------------------------------------------------------------------------
  const IDEAS_SHOWN = 100;
  async function loadIdeas() {
    const list = document.getElementById("idea-list");
    try {
      const ideas = await api(BASE + "/ideas");
      ideas.reverse();
      list.replaceChildren(
        ...ideas.slice(0, IDEAS_SHOWN).map((idea) => {
          let fate = "waiting for the controller";
          if (idea.duplicate_of !== null) fate = "dropped: repeats idea " + idea.duplicate_of;
          else if (idea.trial !== null) fate = el("a", { href: AR.trialPath(NAME, idea.trial) }, "trial " + idea.trial);
          return el(
            "li",
            { dataset: { idea: idea.id } },
            el(
              "div",
              {},
              el("strong", {}, "idea " + idea.id),
              " ",
              AR.badge(idea.origin, "status", idea.origin),
              " ",
              idea.surface ? el("span", { className: "muted" }, idea.surface + " · ") : "",
              el(
                "span",
                { className: "small" },
                "on ",
                idea.parents.length ? "trial " + idea.parents.join(", ") : "—",
                " → ",
              ),
              fate,
            ),
            el("p", { className: "prose hypothesis" }, idea.hypothesis),
          );
        }),
      );
      if (ideas.length > IDEAS_SHOWN)
        list.append(el("li", { className: "muted" }, formatInt(ideas.length - IDEAS_SHOWN) + " older ideas not shown"));
      if (!ideas.length) list.append(el("li", { className: "muted" }, "No idea yet."));
    } catch (error) {
      list.replaceChildren(el("li", { className: "problem" }, error.message));
    }
  }
  document.getElementById("ideas").addEventListener("toggle", (event) => {
    if (event.target.open) loadIdeas();
  });

  // ---- start -----------------------------------------------------------------------------------
  async function start() {
    try {
      // The detail first: its last_event is older than anything the lineage read next can miss, so the
      // stream opened after it replays only what happened since (a few events, not the whole campaign).
      const detail = await api(BASE);
      await loadLineage();
      try {
        const env = await api("/environments/" + encodeURIComponent(detail.environment));
        state.metric = env.metric + (env.unit ? " (" + env.unit + ")" : "");
      } catch {
        // the environment is gone from this server: the axis says "score"
      }
      renderDetail(detail);
      drawCharts();
      drawLabels();
      drawDag();
      await loadPage(0);
      listen(detail.last_event);
    } catch (error) {
      showProblem(error);
    }
  }

  if (CAN_WRITE) wireSteering(); // before anything loads: a form must never submit itself natively
  start();
})();
