// The campaigns list: one request, one row per campaign, newest first.
"use strict";

(async function () {
  const { api, el, showProblem, campaignPath, formatInt, formatTime, badge } = window.AR;
  const body = document.querySelector("#campaigns tbody");
  try {
    const campaigns = await api("/campaigns");
    for (const c of campaigns) {
      body.append(
        el(
          "tr",
          { dataset: { campaign: c.name } },
          el("td", {}, el("a", { href: campaignPath(c.name) }, c.name)),
          el("td", {}, c.environment),
          el("td", {}, c.preset),
          el("td", {}, c.strategy),
          el("td", {}, badge(c.status, "status", c.status)),
          el("td", { className: "num" }, formatInt(c.trial_budget) + " trials"),
          el("td", { className: "goal-cell" }, c.goal),
          el("td", {}, formatTime(c.created_at)),
        ),
      );
    }
    document.getElementById("empty").hidden = campaigns.length > 0;
  } catch (error) {
    showProblem(error);
  }
})();
