// Unified diffs drawn by diff2html with highlight.js: the library escapes the code it shows.
"use strict";

(function () {
  const { el } = window.AR;

  // Draw `diff` into `target`; an empty diff shows `note` (as text) instead.
  function drawDiff(target, diff, note, layout) {
    target.replaceChildren();
    if (!diff || !diff.trim()) {
      target.append(el("p", { className: "muted" }, note || "No change."));
      return;
    }
    const ui = new Diff2HtmlUI(target, diff, {
      outputFormat: layout || "line-by-line",
      drawFileList: true,
      fileListToggle: false,
      fileContentToggle: false,
      matching: "lines",
      highlight: true,
      synchronisedScroll: true,
    });
    ui.draw();
  }

  window.AR.drawDiff = drawDiff;
})();
