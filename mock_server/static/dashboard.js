// The segmind-mock dashboard: reads and drives the admin API under /_mock/ (docs/dashboard.md).
// Plain JavaScript, no dependencies. Data from clients is only ever set as text, never as HTML.
"use strict";

(() => {
  const POLL_MS = 1000; // how often the page asks the fake what changed
  const TICK_MS = 250; // how often the clock and the timelines move between polls
  const PAGE_SIZE = 25;
  const ACTIVE_SHARE = 70; // percent of a timeline bar for queued + processing; the rest is retention

  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

  const view = {
    paused: false,
    health: null, // the last GET health answer
    readAt: 0, // performance.now() when it was read
    jobs: { offset: 0, state: "", total: 0 },
    requests: { offset: 0, total: 0, query: "" },
    refreshing: false,
    again: false,
  };

  // --- talking to the admin API ---------------------------------------------------------------

  // The admin token, when one is needed, travels in the HttpOnly cookie the server set when the
  // page was opened as /_mock/?token=...: same-origin requests carry it without the page seeing it.
  async function call(path, { method = "GET", json } = {}) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (json !== undefined) {
      init.body = JSON.stringify(json);
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(path, init);
    const text = await response.text();
    let body = null;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    if (response.status === 401 || response.status === 403) {
      showBanner(
        `The admin API refused the dashboard (${response.status}: ${errorText(body, response.status)}). ` +
          "Open the dashboard once as /_mock/?token=YOUR_TOKEN; the server keeps the token in a cookie.",
      );
    }
    const total = Number(response.headers.get("X-Total-Count") || 0);
    return { ok: response.ok, status: response.status, body, total };
  }

  function errorText(body, status) {
    if (body && typeof body === "object" && typeof body.error === "string") return body.error;
    return typeof body === "string" && body ? body : `HTTP ${status}`;
  }

  function showBanner(text) {
    const banner = $("#banner");
    banner.textContent = text;
    banner.hidden = !text;
  }

  // --- formatting -------------------------------------------------------------------------------

  function simNow() {
    const health = view.health;
    if (!health) return 0;
    return health.now + ((performance.now() - view.readAt) / 1000) * health.speed;
  }

  function isoTime(unix) {
    return new Date(unix * 1000).toISOString().replace("T", " ").replace("Z", "");
  }

  function clockTime(unix) {
    return isoTime(unix).slice(11);
  }

  function duration(seconds) {
    const s = Math.max(0, seconds);
    if (s < 10) return `${Number(s.toFixed(1))} s`;
    if (s < 120) return `${Math.round(s)} s`;
    if (s < 7200) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
    if (s < 172800) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
    return `${Math.round(s / 86400)} d`;
  }

  function pretty(value) {
    if (value === null || value === undefined) return "(none)";
    return typeof value === "string" ? value : JSON.stringify(value, null, 2);
  }

  // A number typed into a form goes to the admin API as a JSON number; anything else as the text
  // it is, so the API's own message says what to fix.
  function typed(text) {
    const trimmed = text.trim();
    return /^-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(trimmed) ? Number(trimmed) : trimmed;
  }

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // --- keyed rows: rows are updated in place, so an open detail (and its video) survives a poll ---

  function reconcile(tbody, items, keyOf, build, update) {
    const existing = new Map();
    for (const row of $$(":scope > tr.row", tbody)) existing.set(row.dataset.key, row);
    const wanted = [];
    for (const item of items) {
      const key = keyOf(item);
      let row = existing.get(key);
      if (row) existing.delete(key);
      else {
        row = build();
        row.dataset.key = key;
      }
      update(row, item);
      wanted.push(row);
      if (row.detail && row.classList.contains("open")) wanted.push(row.detail);
    }
    for (const row of existing.values()) {
      row.remove();
      if (row.detail) row.detail.remove();
    }
    let cursor = tbody.firstElementChild;
    for (const row of wanted) {
      if (row === cursor) cursor = cursor.nextElementSibling;
      else tbody.insertBefore(row, cursor);
    }
    while (cursor) {
      const next = cursor.nextElementSibling;
      cursor.remove();
      cursor = next;
    }
  }

  function toggle(row, fill, columns) {
    if (row.classList.toggle("open")) {
      if (!row.detail) {
        row.detail = make("tr", "detail-row");
        const cell = make("td");
        cell.colSpan = columns;
        row.detail.appendChild(cell);
      }
      fill(row);
      row.after(row.detail);
    } else if (row.detail) {
      row.detail.remove();
    }
    row.setAttribute("aria-expanded", row.classList.contains("open"));
  }

  function clickable(row, onToggle) {
    row.tabIndex = 0;
    row.setAttribute("aria-expanded", "false");
    row.addEventListener("click", (event) => {
      if (!event.target.closest("button, a, video")) onToggle(row);
    });
    row.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        onToggle(row);
      }
    });
  }

  // --- clock --------------------------------------------------------------------------------------

  function renderClock() {
    const health = view.health;
    if (!health) return;
    const now = simNow();
    $("#clock-now").textContent = `${isoTime(now)} UTC`;
    const speed = health.speed === 0 ? "0× (frozen: only the buttons move it)" : `${health.speed}×`;
    $("#clock-speed").textContent = speed + (health.virtual ? ", virtual" : "");
    const next = health.next_job_end;
    $("#clock-next").textContent = next === null ? "none pending" : `${clockTime(next)} (in ${duration(next - now)})`;
    $("#advance-next").disabled = next === null;
  }

  async function clockAction(path, json) {
    const answer = await call(path, { method: "POST", json });
    $("#clock-error").textContent = answer.ok ? "" : errorText(answer.body, answer.status);
    refresh();
  }

  // --- jobs ---------------------------------------------------------------------------------------

  function buildJobRow() {
    const row = make("tr", "row job");
    row.append(
      make("td", "mono id"),
      make("td", "model"),
      make("td", "mono key"),
      make("td", "state-cell"),
      make("td", "timeline"),
      make("td", "mono at"),
    );
    row.children[3].appendChild(make("span", "state"));
    const bar = make("div", "bar");
    bar.append(make("i", "q"), make("i", "p"), make("i", "r"), make("b", "now-mark"));
    row.children[4].append(bar, make("span", "bar-text"), make("span", "row-error"));
    clickable(row, (r) => toggle(r, fillJobDetail, 6));
    return row;
  }

  function updateJobRow(row, job) {
    row.job = job;
    const cells = row.children;
    cells[0].textContent = job.request_id;
    cells[0].title = job.request_id;
    cells[1].textContent = job.model + (job.sync ? " (v1)" : "");
    cells[2].textContent = job.api_key || "";
    const badge = $(".state", cells[3]);
    badge.textContent = job.state;
    badge.dataset.state = job.state;
    // A failed job's error is in its row: why it failed is the first thing wanted of it.
    showRowError($(".row-error", cells[4]), job.state === "FAILED" ? job.error : "");
    cells[5].textContent = clockTime(job.submitted_at);
    drawTimeline(row, simNow());
    if (row.classList.contains("open")) fillJobDetail(row);
  }

  function showRowError(span, message) {
    span.textContent = message ? `Error: ${message}` : "";
    span.title = message || "";
    span.hidden = !message;
  }

  function drawTimeline(row, now) {
    const job = row.job;
    const active = job.queue_seconds + job.processing_seconds;
    const queued = active > 0 ? (job.queue_seconds / active) * ACTIVE_SHARE : 0;
    const processing = active > 0 ? ACTIVE_SHARE - queued : 0;
    const rest = 100 - queued - processing;
    const [q, p, r] = $$("i", row.children[4]);
    q.style.width = `${queued}%`;
    p.style.width = `${processing}%`;
    r.style.width = `${rest}%`;
    const retention = job.expires_at - job.finished_at;
    // The phase is the fake's word (its last answer), so the text never runs ahead of the badge;
    // the times and the mark move with the clock between polls.
    let at = Math.min(1, (now - job.submitted_at) / active) * (queued + processing);
    let text;
    if (job.state === "QUEUED") {
      text = `queued · starts in ${duration(job.started_at - now)}`;
    } else if (job.state === "PROCESSING") {
      text = `processing · ends in ${duration(job.finished_at - now)}`;
    } else {
      const spent = retention > 0 ? (now - job.finished_at) / retention : 1;
      at = queued + processing + Math.min(1, spent) * rest;
      text = `ended ${duration(now - job.finished_at)} ago · ${duration(job.expires_at - now)} retention left`;
    }
    $(".now-mark", row).style.left = `${Math.max(0, Math.min(100, at || 0))}%`;
    $(".bar-text", row).textContent = text;
  }

  function fillJobDetail(row) {
    const job = row.job;
    const cell = row.detail.firstElementChild;
    if (!cell.firstElementChild) cell.appendChild($("#job-detail").content.cloneNode(true));
    const times = $(".times", cell);
    times.replaceChildren();
    const facts = [
      ["Request id", job.request_id],
      ["Submitted", `${isoTime(job.submitted_at)} UTC`],
      ["Processing from", `${isoTime(job.started_at)} UTC (${duration(job.queue_seconds)} queued)`],
      ["Ends", `${isoTime(job.finished_at)} UTC (${duration(job.processing_seconds)} processing)`],
      ["Retained until", `${isoTime(job.expires_at)} UTC`],
      ["Seed", String(job.seed)],
    ];
    for (const [name, value] of facts) times.append(make("dt", "", name), make("dd", "", value));
    const error = $(".job-error", cell);
    error.textContent = job.error ? `Error: ${job.error}` : "";
    error.hidden = !job.error;
    const params = $(".params", cell);
    const text = pretty(job.params);
    if (params.textContent !== text) params.textContent = text;
    const holder = $(".detail-video", cell);
    // An image model's output is a picture: shown as one (the file name ends .png, .jpg or .webp).
    const isVideo = job.output_file.endsWith(".mp4");
    if (job.state === "COMPLETED") {
      if (!$("video, img", holder)) {
        const video = make(isVideo ? "video" : "img");
        if (isVideo) {
          video.controls = true;
          video.muted = true;
          video.loop = true;
          video.preload = "metadata";
        } else {
          video.alt = `the output of ${job.request_id}`;
        }
        video.src = `outputs/${encodeURIComponent(job.output_file)}`;
        const link = make("a", "video-link", isVideo ? "open the video" : "open the image");
        link.href = video.src;
        link.target = "_blank";
        holder.replaceChildren(video, link);
      }
    } else {
      const kind = isVideo ? "video plays" : "image shows";
      const waiting = job.state === "FAILED" ? `Failed: no ${kind.split(" ")[0]}.` : `The ${kind} here once the job completes.`;
      if (holder.textContent !== waiting) holder.replaceChildren(make("p", "hint", waiting));
    }
  }

  // The scenario form's model choices: every model the fake serves, model files' too.
  function renderModels(models) {
    const select = $("#rule-model");
    const shown = [...select.options].slice(1).map((option) => option.value);
    if (shown.join("\n") === models.join("\n")) return;
    const chosen = select.value;
    select.replaceChildren(make("option", "", "any"), ...models.map((model) => make("option", "", model)));
    select.options[0].value = "";
    select.value = models.includes(chosen) ? chosen : "";
  }

  function renderJobs(health, answer) {
    if (!answer.ok) return;
    view.jobs.total = answer.total;
    $("#jobs-total").textContent = health ? `${health.jobs} retained` : "";
    for (const tab of $$("#jobs-states button")) {
      const count = tab.dataset.state ? health.jobs_by_state[tab.dataset.state] : health.jobs;
      $("span", tab).textContent = String(count);
      tab.classList.toggle("active", tab.dataset.state === view.jobs.state);
    }
    reconcile($("#jobs-rows"), answer.body, (job) => job.request_id, buildJobRow, updateJobRow);
    $("#jobs-empty").hidden = answer.body.length > 0;
    renderPager("jobs", view.jobs, answer.body.length);
  }

  // --- requests (the journal) ---------------------------------------------------------------------

  function buildRequestRow() {
    const row = make("tr", "row request");
    row.append(
      make("td", "mono at"),
      make("td", "method"),
      make("td", "path"),
      make("td", "status-cell"),
      make("td", "mono key"),
      make("td", "mono id"),
    );
    row.children[2].append(make("span", "mono path-text"), make("span", "row-error"));
    row.children[3].appendChild(make("span", "status"));
    clickable(row, (r) => toggle(r, fillRequestDetail, 6));
    return row;
  }

  function updateRequestRow(row, entry) {
    row.entry = entry;
    const cells = row.children;
    cells[0].textContent = clockTime(entry.at);
    cells[1].textContent = entry.method;
    $(".path-text", cells[2]).textContent = entry.path + (entry.query ? `?${entry.query}` : "");
    // An error answer's message is in its row, not only behind a click.
    const answer = entry.response;
    const refused = entry.status >= 400 && answer && typeof answer === "object" && typeof answer.error === "string";
    showRowError($(".row-error", cells[2]), refused ? answer.error : "");
    const status = $(".status", cells[3]);
    status.textContent = entry.status === null ? "no answer" : String(entry.status);
    status.dataset.class = entry.status === null ? "none" : `${String(entry.status)[0]}xx`;
    cells[4].textContent = entry.api_key || "";
    cells[5].textContent = entry.request_id || "";
    cells[5].title = entry.request_id || "";
    if (row.classList.contains("open")) fillRequestDetail(row);
  }

  function bodyText(body, size, type) {
    if (body === null || body === undefined) return size ? `(${type || "binary"}, ${size} bytes)` : "(no body)";
    return pretty(body);
  }

  function fillRequestDetail(row) {
    const entry = row.entry;
    const cell = row.detail.firstElementChild;
    if (cell.firstElementChild) return; // a journal entry never changes
    const grid = make("div", "detail bodies");
    const sent = make("div");
    sent.append(
      make("h4", "", `Request · ${entry.method} ${entry.path} · ${entry.request_size} bytes`),
      make("pre", "request-body", bodyText(entry.request, entry.request_size, "")),
    );
    const got = make("div");
    const status = entry.status === null ? "no answer" : entry.status;
    got.append(
      make("h4", "", `Answer · ${status} · ${entry.response_type || "no content type"} · ${entry.response_size} bytes`),
      make("pre", "response-body", bodyText(entry.response, entry.response_size, entry.response_type)),
    );
    grid.append(sent, got);
    cell.appendChild(grid);
  }

  // Exchanges have no id: a row is known by what it shows, and by its rank among identical ones.
  function requestKeys(entries) {
    const seen = new Map();
    return entries.map((e) => {
      const base = [e.at, e.method, e.path, e.query, e.status, e.request_size, e.response_size].join("|");
      const count = (seen.get(base) || 0) + 1;
      seen.set(base, count);
      return `${base}|${count}`;
    });
  }

  function renderRequests(answer) {
    const error = $("#requests-error");
    if (!answer.ok) {
      error.textContent = errorText(answer.body, answer.status);
      return;
    }
    error.textContent = "";
    view.requests.total = answer.total;
    $("#requests-total").textContent = `${answer.total} ${view.requests.query ? "matching" : "journaled"}`;
    const keys = requestKeys(answer.body);
    const keyed = answer.body.map((entry, index) => ({ entry, key: keys[index] }));
    reconcile($("#requests-rows"), keyed, (item) => item.key, buildRequestRow, (row, item) => updateRequestRow(row, item.entry));
    $("#requests-empty").hidden = answer.body.length > 0;
    renderPager("requests", view.requests, answer.body.length);
    const known = $("#known-keys");
    const masked = [...new Set(answer.body.map((e) => e.api_key).filter(Boolean))];
    if (known.children.length !== masked.length || masked.some((k, i) => known.children[i].value !== k)) {
      known.replaceChildren(...masked.map((k) => Object.assign(make("option"), { value: k })));
    }
  }

  function requestsFilter() {
    const form = new FormData($("#requests-filter"));
    const query = new URLSearchParams();
    for (const name of ["status", "path", "key"]) {
      const value = String(form.get(name) || "").trim();
      if (value) query.set(name, value);
    }
    return query.toString();
  }

  // --- paging -------------------------------------------------------------------------------------

  function renderPager(name, state, shown) {
    const pager = $(`.pager[data-for="${name}"]`);
    const [newer, older] = $$("button", pager);
    const first = state.total ? state.offset + 1 : 0;
    $("span", pager).textContent = `${first}–${state.offset + shown} of ${state.total}, newest first`;
    newer.disabled = state.offset === 0;
    older.disabled = state.offset + shown >= state.total;
    pager.hidden = state.total <= PAGE_SIZE && state.offset === 0;
  }

  function page(state, step) {
    state.offset = Math.max(0, state.offset + step * PAGE_SIZE);
    refresh();
  }

  // --- scenarios ----------------------------------------------------------------------------------

  function buildRuleRow() {
    const row = make("tr", "row rule");
    for (const name of ["order", "target", "mono match", "outcome", "hits", "left", "actions"]) row.append(make("td", name));
    const remove = make("button", "delete", "Delete");
    remove.type = "button";
    remove.addEventListener("click", async () => {
      const answer = await call(`scenarios/${encodeURIComponent(row.dataset.key)}`, { method: "DELETE" });
      $("#scenario-error").textContent = answer.ok ? "" : errorText(answer.body, answer.status);
      refresh();
    });
    row.children[6].appendChild(remove);
    return row;
  }

  function updateRuleRow(row, { rule, index }) {
    const cells = row.children;
    cells[0].textContent = String(index + 1);
    cells[0].title = `rule id ${rule.id}`;
    cells[1].textContent = rule.target + (rule.nth > 1 ? ` · nth ${rule.nth}` : "");
    cells[1].title = rule.nth > 1 ? `applies from the matching request number ${rule.nth} on` : "";
    cells[2].textContent = Object.keys(rule.match).length ? JSON.stringify(rule.match) : "any";
    const parts = [rule.outcome];
    if (rule.status) parts.push(String(rule.status));
    if (rule.error) parts.push(`"${rule.error}"`);
    for (const name of ["delay_seconds", "queue_seconds", "processing_seconds"]) {
      if (rule[name] !== undefined) parts.push(`${name.replace("_seconds", "")} ${rule[name]} s`);
    }
    cells[3].textContent = parts.join(" · ");
    cells[4].textContent = String(rule.hits);
    cells[4].title = `${rule.seen} matching request(s) seen`;
    cells[5].textContent = rule.times === -1 ? "∞" : String(rule.times);
    $(".delete", row).title = `DELETE /_mock/scenarios/${rule.id}`;
  }

  function renderRules(answer) {
    if (!answer.ok) return;
    const items = answer.body.map((rule, index) => ({ rule, index }));
    reconcile($("#scenarios-rows"), items, (item) => item.rule.id, buildRuleRow, updateRuleRow);
    $("#scenarios-empty").hidden = answer.body.length > 0;
  }

  // The rule the form describes, or `broken`: why Match more cannot be sent (it is not JSON).
  function ruleBody() {
    const form = new FormData($("#scenario-form"));
    const text = (name) => String(form.get(name) || "").trim();
    const body = { outcome: text("outcome") };
    if (text("target") !== "submit") body.target = text("target");
    let match = {};
    if (text("match")) {
      try {
        match = JSON.parse(text("match"));
      } catch (error) {
        return { broken: `Match more is not valid JSON (${error.message}): write a JSON object, e.g. {"frames": 14}` };
      }
    }
    if (text("model")) match = match && typeof match === "object" && !Array.isArray(match) ? { model: text("model"), ...match } : match;
    if (typeof match !== "object" || match === null || Object.keys(match).length) body.match = match;
    for (const name of ["times", "nth", "status", "delay_seconds", "queue_seconds", "processing_seconds"]) {
      if (text(name)) body[name] = typed(text(name));
    }
    if (text("error")) body.error = text("error");
    return { body };
  }

  function previewRule() {
    const { body, broken } = ruleBody();
    $("#scenario-preview").textContent = broken || `POST /_mock/scenarios ${JSON.stringify(body)}`;
  }

  async function addRule(event) {
    event.preventDefault();
    const message = $("#scenario-error");
    const { body, broken } = ruleBody();
    if (broken) {
      message.classList.remove("ok");
      message.textContent = broken; // nothing sent: the server would only see a string
      return;
    }
    const answer = await call("scenarios", { method: "POST", json: body });
    message.classList.toggle("ok", answer.ok);
    message.textContent = answer.ok ? `Added rule ${answer.body.id}.` : errorText(answer.body, answer.status);
    refresh();
  }

  // --- accounts -----------------------------------------------------------------------------------

  function buildAccountRow() {
    const row = make("tr", "row account");
    for (const name of ["mono key", "balance", "held", "spent", "models", "rate"]) row.append(make("td", name));
    return row;
  }

  function credits(value) {
    return value === null || value === undefined ? "unlimited" : Number(value.toFixed(4)).toString();
  }

  function updateAccountRow(row, account) {
    const cells = row.children;
    cells[0].textContent = account.key;
    cells[1].textContent = credits(account.balance);
    cells[2].textContent = credits(account.held);
    cells[3].textContent = credits(account.spent);
    cells[4].textContent = account.models ? account.models.join(", ") : "all";
    const rate = cells[5];
    rate.replaceChildren();
    if (account.rpm === null) {
      rate.textContent = `${account.requests_last_minute} · no limit`;
      return;
    }
    const meter = make("meter");
    meter.max = account.rpm;
    meter.value = account.requests_last_minute;
    meter.high = account.rpm * 0.8;
    rate.append(meter, ` ${account.requests_last_minute} / ${account.rpm}`);
    if (account.rate_limit_reset_at_utc) rate.append(make("span", "error", ` limited until ${account.rate_limit_reset_at_utc}`));
  }

  function renderAccounts(answer) {
    if (!answer.ok) return;
    const section = $("#accounts");
    section.hidden = answer.body.open;
    if (answer.body.open) return;
    reconcile($("#accounts-rows"), answer.body.accounts, (a) => a.key, buildAccountRow, updateAccountRow);
  }

  // --- following the fake -------------------------------------------------------------------------

  function setLive(state, text) {
    const live = $("#live");
    live.dataset.state = state;
    live.textContent = text;
  }

  async function refresh() {
    if (view.refreshing) {
      view.again = true; // an action happened during a poll: poll once more when it ends
      return;
    }
    view.refreshing = true;
    try {
      const jobsQuery = new URLSearchParams({ order: "newest", limit: PAGE_SIZE, offset: view.jobs.offset });
      if (view.jobs.state) jobsQuery.set("state", view.jobs.state);
      view.requests.query = requestsFilter();
      const requestsQuery = `order=newest&limit=${PAGE_SIZE}&offset=${view.requests.offset}&${view.requests.query}`;
      const [health, jobs, requests, rules, accounts] = await Promise.all([
        call("health"),
        call(`jobs?${jobsQuery}`),
        call(`requests?${requestsQuery}`),
        call("scenarios"),
        call("accounts"),
      ]);
      if (!health.ok) throw new Error(errorText(health.body, health.status));
      view.health = health.body;
      view.readAt = performance.now();
      renderModels(view.health.models);
      // A page emptied under the pager (jobs expired, journal cleared) steps back to the last page.
      for (const [state, answer] of [[view.jobs, jobs], [view.requests, requests]]) {
        if (answer.ok && state.offset > 0 && state.offset >= answer.total) {
          state.offset = Math.max(0, Math.floor((answer.total - 1) / PAGE_SIZE) * PAGE_SIZE);
          view.again = true;
        }
      }
      renderClock();
      renderJobs(view.health, jobs);
      renderRequests(requests);
      renderRules(rules);
      renderAccounts(accounts);
      setLive("live", view.paused ? "paused" : "live");
      if (health.ok && jobs.ok) showBanner("");
    } catch (error) {
      setLive("offline", `offline: ${error.message || error}`);
    } finally {
      view.refreshing = false;
      if (view.again) {
        view.again = false;
        refresh();
      }
    }
  }

  function tick() {
    if (!view.health || view.paused) return;
    renderClock();
    const now = simNow();
    for (const row of $$("#jobs-rows > tr.row")) drawTimeline(row, now);
  }

  function wire() {
    for (const button of $$("[data-advance]")) {
      button.addEventListener("click", () => clockAction("clock/advance", { seconds: Number(button.dataset.advance) }));
    }
    $("#advance-next").addEventListener("click", () => {
      const next = view.health && view.health.next_job_end;
      if (next !== null && next !== undefined) clockAction("clock/advance", { seconds: Math.max(0, next - simNow()) });
    });
    $("#speed-form").addEventListener("submit", (event) => {
      event.preventDefault();
      clockAction("clock", { speed: typed($("#speed-input").value) });
    });
    $("#reset").addEventListener("click", () => clockAction("reset"));
    $("#pause").addEventListener("click", () => {
      view.paused = !view.paused;
      $("#pause").textContent = view.paused ? "Resume" : "Pause";
      setLive(view.paused ? "paused" : "live", view.paused ? "paused" : "live");
      if (!view.paused) refresh();
    });
    for (const tab of $$("#jobs-states button")) {
      tab.addEventListener("click", () => {
        view.jobs.state = tab.dataset.state;
        view.jobs.offset = 0;
        refresh();
      });
    }
    for (const [name, state] of [["jobs", view.jobs], ["requests", view.requests]]) {
      for (const button of $$(`.pager[data-for="${name}"] button`)) {
        button.addEventListener("click", () => page(state, Number(button.dataset.page)));
      }
    }
    let typing = 0;
    const filters = $("#requests-filter");
    filters.addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => {
        view.requests.offset = 0;
        refresh();
      }, 250);
    });
    filters.addEventListener("reset", () => setTimeout(() => filters.dispatchEvent(new Event("input")), 0));
    filters.addEventListener("submit", (event) => event.preventDefault());
    const ruleForm = $("#scenario-form");
    ruleForm.addEventListener("input", previewRule);
    ruleForm.addEventListener("submit", addRule);
    previewRule();
  }

  wire();
  refresh();
  setInterval(() => {
    if (!view.paused && !document.hidden) refresh();
  }, POLL_MS);
  setInterval(tick, TICK_MS);
})();
