// The console's own few lines: bring the first line an error names into view in each raw
// message (the page stays usable without them).
document.addEventListener("DOMContentLoaded", () => {
  for (const pre of document.querySelectorAll("pre.numbered")) {
    const marked = pre.querySelector(".line.marked");
    if (marked) {
      pre.scrollTop = Math.max(0, marked.offsetTop - pre.offsetTop - 3 * marked.offsetHeight);
    }
  }
});
