// Juno's room page: the live transcript and translation, fed over a WebSocket.
//
// The server numbers its events (seq from 1). The page keeps the last one it has and,
// after any break, reconnects by itself and asks for what came after it; a new
// session (or a history that no longer holds those events) makes it start over.
// With several target languages the viewer picks one; the choice is kept (and put in
// the address as ?lang=, so a link can be shared with that language's audience).
// In a two-way conversation the viewer picks a language of the pair and reads every
// turn in it: the turns spoken in it as spoken, the others as translated into it.
"use strict";

(() => {
  const RECONNECT_MAX_MS = 8000;
  // Within this many pixels of the bottom, the page follows the live end.
  const FOLLOW_SLACK_PX = 80;
  const SCALES = [0.6, 0.7, 0.8, 0.9, 1, 1.15, 1.3, 1.5, 1.75, 2, 2.4];
  const THEMES = ["auto", "dark", "light"];
  const STATES = {
    starting: "starting…",
    listening: "live",
    draining: "finishing…",
    done: "ended",
    stopped: "stopped",
  };

  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const $ = (id) => document.getElementById(id);
  const main = $("transcript");

  const prefs = { view: "target", lang: "", theme: "auto", scale: 1, ...loadPrefs() };
  // A language in the address (a link shared for one audience) wins over the one kept.
  if (params.get("lang")) prefs.lang = params.get("lang");
  let session = null;
  let lastSeq = 0;
  let state = "starting";
  let source = { code: "", name: "" };
  let targets = [];
  // A two-way conversation's languages ([] one way).
  let pair = [];
  let socket = null;
  let retries = 0;
  let retryTimer = 0;
  let drawPending = 0;
  let follow = true;
  // index -> {src, srcDone, srcText, lang (spoken in), tgt: Map(lang -> words),
  //           tgtText: Map(lang -> text), node}
  const sentences = new Map();
  const dirty = new Set();
  // lang -> the lag of its last complete sentence
  const lags = new Map();

  function loadPrefs() {
    try {
      return JSON.parse(localStorage.getItem("juno-room") || "{}");
    } catch {
      return {};
    }
  }

  function savePrefs() {
    try {
      localStorage.setItem("juno-room", JSON.stringify(prefs));
    } catch {
      // private mode: the choices last for this visit only
    }
  }

  function withToken(path) {
    if (!token) return path;
    return `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
  }

  // Words written in parts ("9:" "30", "cold" "-hearted") join without a space, as
  // juno.simul.policy.join_words.
  function join(words) {
    let out = "";
    for (const w of words) out += !out || w.attached ? w.text : ` ${w.text}`;
    return out;
  }

  // -- connection --------------------------------------------------------------

  function connect() {
    clearTimeout(retryTimer);
    showConnection(retries ? "reconnecting" : "connecting");
    const query = new URLSearchParams();
    if (session) {
      query.set("session", session);
      query.set("since", String(lastSeq));
    }
    if (token) query.set("token", token);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws?${query}`);
    socket = ws;
    ws.onmessage = (e) => {
      if (ws === socket) receive(JSON.parse(e.data));
    };
    ws.onclose = () => {
      if (ws !== socket) return;
      socket = null;
      retries += 1;
      showConnection(state === "done" || state === "stopped" ? "ended" : "reconnecting");
      const backoff = Math.min(RECONNECT_MAX_MS, 500 * 2 ** Math.min(retries - 1, 5));
      retryTimer = setTimeout(connect, backoff * (0.75 + Math.random() / 2));
    };
  }

  function reconnectNow() {
    if (!socket) {
      retries = 0;
      connect();
    }
  }

  function receive(data) {
    if (Array.isArray(data)) {
      for (const event of data) {
        if (!apply(event)) break;
      }
      scheduleDraw();
    } else if (data.type === "hello") {
      if (data.reset || data.session !== session) clear();
      session = data.session;
      source = data.source;
      targets = data.targets;
      pair = data.pair || [];
      main.classList.toggle("conversation", pair.length > 0);
      retries = 0;
      fillLanguages();
      fillFiles();
      setState(data.state);
      showConnection("live");
    } else if (data.type === "reset") {
      clear();
    }
  }

  // Takes one event; false when one is missing (then the page reconnects to get it).
  function apply(event) {
    if (event.seq <= lastSeq) return true;
    if (lastSeq && event.seq !== lastSeq + 1) {
      socket?.close();
      return false;
    }
    lastSeq = event.seq;
    if (event.type === "status") {
      setState(event.state);
      return true;
    }
    const s = sentence(event.sentence);
    if (event.type === "source") {
      s.src.push(event);
      s.srcDone = s.srcDone || event.end;
      s.lang = s.lang || event.lang || "";
    } else if (event.type === "target") {
      if (!s.tgt.has(event.lang)) s.tgt.set(event.lang, []);
      s.tgt.get(event.lang).push(event);
    } else if (event.type === "sentence") {
      s.srcDone = true;
      s.srcText = event.source;
      s.tgtText.set(event.lang, event.target);
      lags.set(event.lang, event.lag_s);
      showLag();
    }
    return true;
  }

  function clear() {
    sentences.clear();
    dirty.clear();
    main.replaceChildren();
    lastSeq = 0;
    lags.clear();
    showLag();
    $("empty").hidden = false;
  }

  function sentence(index) {
    let s = sentences.get(index);
    if (!s) {
      s = {
        src: [], srcDone: false, srcText: "", lang: "", tgt: new Map(), tgtText: new Map(), node: null,
      };
      sentences.set(index, s);
    }
    dirty.add(index);
    return s;
  }

  // -- drawing -------------------------------------------------------------------

  function scheduleDraw() {
    if (!drawPending) drawPending = requestAnimationFrame(draw);
  }

  function draw() {
    drawPending = 0;
    const stick = follow;
    for (const index of [...dirty].sort((a, b) => a - b)) drawSentence(index, sentences.get(index));
    dirty.clear();
    $("empty").hidden = sentences.size > 0;
    if (stick) toLiveEnd();
  }

  function drawSentence(index, s) {
    if (!s.node) {
      s.node = document.createElement("article");
      s.node.className = "sentence";
      s.node.dataset.index = String(index);
      s.srcNode = document.createElement("p");
      s.srcNode.className = "src";
      s.tgtNode = document.createElement("p");
      s.tgtNode.className = "tgt";
      s.node.append(s.srcNode, s.tgtNode);
      // Sentences come in order; one may start before an earlier one is placed.
      let after = main.lastElementChild;
      while (after && Number(after.dataset.index) > index) after = after.previousElementSibling;
      if (after) after.after(s.node);
      else main.prepend(s.node);
    }
    const lang = currentLanguage();
    const spoken = spokenLanguage(s);
    // A conversation's turn spoken in the viewer's language is read as it was spoken.
    const own = pair.length > 0 && spoken === lang;
    const done = own ? s.srcDone : s.tgtText.has(lang);
    const said = s.srcText || join(s.src);
    s.srcNode.lang = spoken || source.code;
    s.srcNode.textContent = said;
    s.tgtNode.lang = lang;
    s.tgtNode.textContent = own ? said : done ? s.tgtText.get(lang) : join(s.tgt.get(lang) || []);
    s.node.classList.toggle("own", own);
    if (pair.length && spoken) s.node.dataset.spoken = spoken;
    s.node.classList.toggle("src-live", !s.srcDone);
    s.node.classList.toggle("tgt-live", !done);
  }

  // The language a turn was spoken in: its words', else (its translation came first) the
  // one of the pair it is not translated into; "" when nothing tells.
  function spokenLanguage(s) {
    if (s.lang || !pair.length) return s.lang;
    const others = pair.map((p) => p.code).filter((c) => !s.tgt.has(c) && !s.tgtText.has(c));
    return others.length === 1 ? others[0] : "";
  }

  function redrawAll() {
    for (const index of sentences.keys()) dirty.add(index);
    scheduleDraw();
  }

  function atLiveEnd() {
    const page = document.documentElement;
    return window.innerHeight + window.scrollY >= page.scrollHeight - FOLLOW_SLACK_PX;
  }

  function toLiveEnd() {
    window.scrollTo(0, document.documentElement.scrollHeight);
    follow = true;
    $("live").hidden = true;
  }

  // -- status and controls ---------------------------------------------------------

  function setState(next) {
    state = next;
    if (socket && socket.readyState === WebSocket.OPEN) showConnection("live");
  }

  function showConnection(connection) {
    const text =
      connection === "live" ? STATES[state] || state
      : connection === "reconnecting" ? "reconnecting…"
      : connection === "ended" ? "ended"
      : "connecting…";
    const shown = connection === "live" && (state === "done" || state === "stopped") ? "ended" : connection;
    $("conn").dataset.state = shown;
    $("conn-text").textContent = text;
  }

  function showLag() {
    const lag = lags.get(currentLanguage());
    $("lag").textContent = lag === undefined ? "lag –" : `lag ${lag.toFixed(1)} s`;
  }

  function currentLanguage() {
    const codes = targets.map((t) => t.code);
    return codes.includes(prefs.lang) ? prefs.lang : codes[0] || "";
  }

  function fillLanguages() {
    const select = $("lang");
    select.replaceChildren(
      ...targets.map((t) => new Option(t.name, t.code)),
    );
    select.value = currentLanguage();
    select.disabled = targets.length < 2;
    redrawAll();
  }

  function fillFiles() {
    const links = [[`Transcript · ${pair.length ? "as spoken" : source.name}`, "/transcript.txt"]];
    if (pair.length) {
      // Every turn in each language; its subtitles likewise.
      for (const t of pair) links.push([`Conversation · ${t.name}`, `/conversation.${t.code}.txt`]);
    } else if (targets.length > 1) {
      for (const t of targets) links.push([`Translation · ${t.name}`, `/translation.${t.code}.txt`]);
    } else {
      links.push([`Translation · ${targets.map((t) => t.name).join(", ")}`, "/translation.txt"]);
    }
    for (const lang of pair.length ? pair : [source, ...targets]) {
      for (const ext of ["srt", "vtt"]) {
        links.push([`Subtitles · ${lang.name} .${ext}`, `/subtitles/${lang.code}.${ext}`]);
      }
    }
    links.push(["Live figures (JSON)", "/stats"]);
    $("files").replaceChildren(
      ...links.map(([label, path]) => {
        const a = document.createElement("a");
        a.href = withToken(path);
        a.textContent = label;
        a.target = "_blank";
        a.rel = "noopener";
        return a;
      }),
    );
  }

  function applyPrefs() {
    main.dataset.view = prefs.view;
    $("view").value = prefs.view;
    const root = document.documentElement;
    if (prefs.theme === "auto") delete root.dataset.theme;
    else root.dataset.theme = prefs.theme;
    $("theme").title = `Theme: ${prefs.theme}`;
    root.style.setProperty("--scale", String(prefs.scale));
  }

  function step(scale, by) {
    let i = SCALES.findIndex((s) => s >= scale);
    if (i < 0) i = SCALES.length - 1;
    return SCALES[Math.max(0, Math.min(SCALES.length - 1, i + by))];
  }

  function choose(change) {
    Object.assign(prefs, change);
    savePrefs();
    applyPrefs();
    if (follow) toLiveEnd();
  }

  $("view").addEventListener("change", (e) => choose({ view: e.target.value }));
  $("lang").addEventListener("change", (e) => {
    choose({ lang: e.target.value });
    const address = new URL(location.href);
    address.searchParams.set("lang", e.target.value);
    history.replaceState(null, "", address);
    showLag();
    redrawAll();
  });
  $("smaller").addEventListener("click", () => choose({ scale: step(prefs.scale, -1) }));
  $("larger").addEventListener("click", () => choose({ scale: step(prefs.scale, 1) }));
  $("theme").addEventListener("click", () => {
    choose({ theme: THEMES[(THEMES.indexOf(prefs.theme) + 1) % THEMES.length] });
  });
  $("live").addEventListener("click", toLiveEnd);
  window.addEventListener(
    "scroll",
    () => {
      follow = atLiveEnd();
      $("live").hidden = follow || sentences.size === 0;
    },
    { passive: true },
  );
  window.addEventListener("resize", () => {
    if (follow) toLiveEnd();
  });
  // A phone that slept or changed networks: try again at once, not at the next backoff.
  window.addEventListener("online", reconnectNow);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) reconnectNow();
  });

  applyPrefs();
  connect();
})();
