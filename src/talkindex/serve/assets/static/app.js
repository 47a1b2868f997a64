// talkindex pages: Play buttons and clickable transcript sentences drive one in-page player.
// A static file (the Content-Security-Policy forbids inline scripts); no framework, no build step.
"use strict";

(function () {
  const box = () => document.getElementById("player-box");

  function whenReady(el, fn) {
    if (el.readyState >= 1) { fn(); return; }
    el.addEventListener("loadedmetadata", fn, { once: true });
  }

  function youtube(src, start, autoplay) {
    const b = box();
    const url = src + "?start=" + Math.floor(start) + "&enablejsapi=1" + (autoplay ? "&autoplay=1" : "");
    let f = document.getElementById("yt");
    if (!f) {
      b.textContent = "";
      f = document.createElement("iframe");
      f.id = "yt";
      f.title = "YouTube player";
      f.allow = "autoplay; encrypted-media; picture-in-picture";
      f.allowFullscreen = true;
      f.referrerPolicy = "strict-origin-when-cross-origin";
      b.appendChild(f);
    }
    f.src = url;
  }

  function media(kind, src, start, autoplay) {
    const b = box();
    let el = document.getElementById("media");
    if (!el || el.tagName.toLowerCase() !== kind || el.dataset.src !== src) {
      b.textContent = "";
      el = document.createElement(kind);
      el.id = "media";
      el.controls = true;
      el.preload = "auto";
      el.dataset.src = src;
      el.src = src;
      b.appendChild(el);
    }
    whenReady(el, () => {
      el.currentTime = start;
      if (autoplay) {
        const p = el.play();
        if (p && p.catch) p.catch(() => {});
      }
    });
  }

  // Play `kind`/`src` from `start` seconds without reloading the page.
  function play(kind, src, start, autoplay) {
    const b = box();
    if (!b || !src) return;
    b.dataset.kind = kind;
    b.dataset.src = src;
    b.classList.add("active");
    if (kind === "youtube") youtube(src, start, autoplay);
    else media(kind, src, start, autoplay);
  }

  function mark(p) {
    document.querySelectorAll(".sentence.current").forEach((e) => e.classList.remove("current"));
    p.classList.add("current");
  }

  document.addEventListener("click", (ev) => {
    const btn = ev.target.closest("button.play");
    if (btn) {
      document.querySelectorAll(".hit.playing").forEach((e) => e.classList.remove("playing"));
      btn.closest(".hit").classList.add("playing");
      play(btn.dataset.kind, btn.dataset.src, parseFloat(btn.dataset.start) || 0, true);
      return;
    }
    const o = ev.target.closest("a.seek");  // an outline chapter: seek there, mark its first sentence
    if (o && box()) {
      ev.preventDefault();
      const t = parseFloat(o.dataset.start) || 0;
      const first = Array.from(document.querySelectorAll(".sentence"))
        .find((e) => (parseFloat(e.dataset.start) || 0) >= t - 0.05);
      if (first) { mark(first); first.scrollIntoView({ block: "start" }); }
      history.replaceState(null, "", "?t=" + t);
      play(box().dataset.kind, box().dataset.src, t, true);
      return;
    }
    const s = ev.target.closest(".sentence");
    if (s && box()) {
      ev.preventDefault();
      const t = parseFloat(s.dataset.start) || 0;
      mark(s);
      history.replaceState(null, "", "?t=" + t);
      play(box().dataset.kind, box().dataset.src, t, true);
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    const b = box();
    const cur = document.querySelector(".sentence.current");
    if (cur) cur.scrollIntoView({ block: "center" });
    if (!b || b.dataset.t === "") return;
    const el = document.getElementById("media");
    if (el) {
      el.dataset.src = b.dataset.src;
      whenReady(el, () => { el.currentTime = parseFloat(b.dataset.t) || 0; });
    }
  });
})();
