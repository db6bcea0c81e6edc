// Gatehouse approval page.
//
// Security model: the API key is kept in sessionStorage (this tab only) and sent solely as the
// X-API-Key request header on same-origin fetch calls with credentials omitted. No cookie ever
// authenticates, so the page is CSRF-safe by construction, and the key is never placed in a URL.
// Everything the API returns is rendered with createElement/textContent, never as HTML.
"use strict";

(() => {
  const STORAGE_KEY = "gatehouse.apiKey";
  const API = "/api/v1";

  const $ = (id) => document.getElementById(id);
  const ui = {};

  // ---- small DOM helpers (text only, never HTML) ------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else if (name === "className") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  function fmtValue(value) {
    if (value === null || value === undefined) return "(none)";
    if (typeof value === "string") return value;
    return JSON.stringify(value, null, 2);
  }

  function fmtTime(text) {
    if (!text) return "(unknown)";
    const at = new Date(text);
    // With the time zone: an approver and the on-call log may not share one.
    return Number.isNaN(at.getTime()) ? String(text)
      : at.toLocaleString(undefined, { timeZoneName: "short" });
  }

  function relative(text) {
    const at = new Date(text).getTime();
    if (!text || Number.isNaN(at)) return "";
    const minutes = Math.round((at - Date.now()) / 60000);
    if (minutes === 0) return "now";
    const span = Math.abs(minutes) < 120 ? `${Math.abs(minutes)} min`
      : `${Math.round(Math.abs(minutes) / 60)} h`;
    return minutes > 0 ? `in ${span}` : `${span} ago`;
  }

  function timeEl(text) {
    const rel = relative(text);
    return el("span", {},
      el("time", { datetime: text || null, text: fmtTime(text) }),
      rel ? el("span", { className: "muted", text: ` (${rel})` }) : null);
  }

  function chips(mapping, emptyText) {
    const entries = Object.entries(mapping || {});
    if (!entries.length) return el("span", { className: "muted", text: emptyText });
    return el("ul", { className: "chips" },
      entries.map(([k, v]) => el("li", { className: "chip" },
        el("span", { className: "chip-key", text: k }), "=",
        el("span", { className: "chip-value", text: fmtValue(v) }))));
  }

  function tags(list, emptyText) {
    if (!Array.isArray(list) || !list.length) {
      return el("span", { className: "muted", text: emptyText });
    }
    return el("ul", { className: "chips" },
      list.map((t) => el("li", { className: "chip risk", text: fmtValue(t) })));
  }

  function row(term, detail) {
    return [el("dt", { text: term }), el("dd", {}, detail)];
  }

  // ---- status region ----------------------------------------------------------------------

  function say(message, kind) {
    ui.status.textContent = message;
    ui.status.className = `status ${kind || "info"}`;
  }

  // ---- API --------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function key() {
    return sessionStorage.getItem(STORAGE_KEY);
  }

  async function api(method, path, body) {
    const headers = { "Accept": "application/json", "X-API-Key": key() || "" };
    const init = {
      method,
      headers,
      credentials: "omit",
      cache: "no-store",
      redirect: "error",
      referrerPolicy: "no-referrer",
    };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(API + path, init);
    } catch (err) {
      throw new ApiError(0, "network_error", "the server could not be reached");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      const error = (data && data.error) || {};
      throw new ApiError(response.status, error.code || `http_${response.status}`,
        error.message || `HTTP ${response.status} ${response.statusText}`.trim());
    }
    return data || {};
  }

  // ---- session ----------------------------------------------------------------------------

  function signedOutView(message, kind) {
    sessionStorage.removeItem(STORAGE_KEY);
    generation += 1; // drop any answer still on its way for the old session
    ui.whoami.textContent = "";
    clearInterval(ui.timer);
    ui.list.replaceChildren();
    ui.historyRows.replaceChildren();
    show(ui.history, false);
    show(ui.session, false);
    show(ui.queue, false);
    show(ui.signin, true);
    if (message) say(message, kind);
    ui.keyInput.focus();
  }

  async function startSession() {
    let who;
    try {
      who = await api("GET", "/whoami");
    } catch (err) {
      signedOutView(`Sign-in failed: ${err.message}`, "error");
      return;
    }
    const roles = Array.isArray(who.roles) ? who.roles.join(", ") : "";
    ui.whoami.replaceChildren(
      "Signed in as ", el("strong", { text: who.name || who.id || "?" }),
      el("span", { className: "muted", text: ` (${who.id || "?"})` }),
      ` · tenant ${who.acting_tenant || who.tenant || "?"}`,
      roles ? ` · roles: ${roles}` : "");
    show(ui.signin, false);
    show(ui.session, true);
    show(ui.queue, true);
    say(`Signed in as ${who.name || who.id || "?"}`, "info");
    try {
      ui.policy = await api("GET", "/policy");  // the name and serial of the running bundle
    } catch (err) {
      ui.policy = null;
    }
    await loadQueue({ announce: false });
    autoRefresh();
  }

  async function onSignIn(event) {
    event.preventDefault();
    const value = ui.keyInput.value.trim();
    ui.keyInput.value = "";
    if (!value) {
      say("Enter an API key to sign in", "error");
      ui.keyInput.focus();
      return;
    }
    sessionStorage.setItem(STORAGE_KEY, value);
    say("Signing in…", "info");
    await startSession();
    if (key()) ui.queueTitle.focus();
  }

  function onSignOut() {
    signedOutView("Signed out", "info");
  }

  // ---- auto-refresh and history -----------------------------------------------------------

  const REFRESH_MS = 15000;
  const DECIDED = ["approved", "rejected", "expired", "consumed", "stale", "void"];

  // Refresh by itself, but never under the approver's hands: not while a decision is armed
  // or a comment is being typed (drafts survive a refresh anyway).
  function autoRefresh() {
    clearInterval(ui.timer);
    ui.timer = setInterval(() => {
      if (!key() || ui.queue.hidden || ui.list.querySelector("button[data-armed='1']")) return;
      const active = document.activeElement;
      if (active && active.tagName === "TEXTAREA" && active.value) return;
      loadQueue({ announce: false });
    }, REFRESH_MS);
  }

  // The queue is paged (oldest first, `next_cursor`): follow the cursors so a queue longer than
  // one page is shown whole, up to MAX_PAGES pages so a runaway queue cannot stall the page.
  const PAGE_SIZE = 200;
  const MAX_PAGES = 10;

  async function listApprovals(status) {
    const items = [];
    let cursor = null;
    for (let n = 0; n < MAX_PAGES; n++) {
      const query = new URLSearchParams({ status, limit: String(PAGE_SIZE) });
      if (cursor) query.set("cursor", cursor);
      const data = await api("GET", `/approvals?${query}`);
      if (Array.isArray(data.approvals)) items.push(...data.approvals);
      cursor = typeof data.next_cursor === "string" && data.next_cursor ? data.next_cursor : null;
      if (!cursor) return { items, more: false };
    }
    return { items, more: true };
  }

  async function loadHistory() {
    const all = [];
    for (const status of DECIDED) {
      try {
        all.push(...(await listApprovals(status)).items);
      } catch (err) {
        return;  // the queue's own error message says enough
      }
    }
    const when = (a) => a.decided_at || a.consumed_at || a.expires_at || a.requested_at || "";
    all.sort((x, y) => (when(x) < when(y) ? 1 : -1));
    const rows = all.slice(0, 25).map((a) => el("tr", { "data-approval-id": a.approval_id || "" },
      el("td", {}, el("code", { text: fmtValue(a.approval_id) })),
      el("td", {}, el("code", { text: a.job_id || `${a.session_id || "?"}/${a.step_id || "?"}` })),
      el("td", { className: `decision ${String(a.status || "")}`, text: fmtValue(a.status) }),
      el("td", { text: a.approver ? String(a.approver) : "—" }),
      el("td", {}, timeEl(when(a))),
      el("td", { text: a.comment ? String(a.comment) : "" })));
    ui.historyRows.replaceChildren(...rows);
    show(ui.history, true);
    show(ui.historyTable, rows.length > 0);
    show(ui.historyEmpty, rows.length === 0);
  }

  // ---- the queue --------------------------------------------------------------------------

  // Refreshes may overlap (a click on Refresh while a decision is being sent): only the
  // latest one renders.
  let generation = 0;

  function findButton(jobId, verb) {
    // Compare attributes instead of building a selector from server data.
    for (const b of ui.list.querySelectorAll("button[data-testid]")) {
      if (b.dataset.testid === `${verb}-${jobId}`) return b;
    }
    return null;
  }

  async function loadQueue({ announce = true, refocus = false, focusJob = null } = {}) {
    const mine = ++generation;
    ui.queue.setAttribute("aria-busy", "true");
    // Keep comments typed into articles that survive the refresh.
    const drafts = new Map();
    for (const box of ui.list.querySelectorAll("textarea[data-job-id]")) {
      if (box.value) drafts.set(box.dataset.jobId, box.value);
    }
    // Disabling a focused button drops focus to <body>, so act() asks explicitly.
    const hadFocus = refocus || ui.list.contains(document.activeElement);
    try {
      const { items, more } = await listApprovals("pending");
      if (mine !== generation) return;
      ui.list.replaceChildren(...items.map((a, i) => renderApproval(a, i, drafts)));
      show(ui.empty, items.length === 0);
      const counted = `${items.length}${more ? "+" : ""}`;
      ui.count.textContent = items.length ? `(${counted})` : "";
      if (announce) {
        say(items.length ? `${counted} approval${items.length === 1 ? "" : "s"} waiting`
          : "No approvals waiting", "info");
      }
    } catch (err) {
      if (mine !== generation) return;
      if (err.status === 401) {
        signedOutView(`Signed out: ${err.message}`, "error");
        return;
      }
      ui.list.replaceChildren();
      show(ui.empty, false);
      ui.count.textContent = "";
      say(`Could not load the approval queue: ${err.message}`, "error");
    } finally {
      if (mine === generation) ui.queue.setAttribute("aria-busy", "false");
    }
    loadHistory();
    if (hadFocus && !ui.list.contains(document.activeElement)) {
      const again = focusJob && findButton(focusJob, "approve");
      (again || ui.queueTitle).focus();
    }
  }

  function renderDerived(derived) {
    const parts = [];
    const hits = Array.isArray(derived.hits) ? derived.hits : [];
    if (hits.length) {
      parts.push(el("table", { className: "grid" },
        el("caption", { text: "Why these labels were derived" }),
        el("thead", {}, el("tr", {},
          ["Pattern", "Found in", "Label", "Value", "Risk tag", "Excerpt"].map(
            (h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, hits.map((h) => el("tr", {},
          el("td", {}, el("code", { text: fmtValue(h.pattern) })),
          el("td", { text: h.source ? fmtValue(h.source) : "" }),
          el("td", { text: h.label ? fmtValue(h.label) : "" }),
          el("td", { text: h.value !== undefined && h.value !== null ? fmtValue(h.value) : "" }),
          el("td", { text: h.risk_tag ? fmtValue(h.risk_tag) : "" }),
          el("td", {}, el("span", { className: "excerpt", text: fmtValue(h.excerpt) })))))));
    }
    const dropped = Array.isArray(derived.dropped) ? derived.dropped : [];
    if (dropped.length) {
      parts.push(el("p", { className: "note" }, "Dropped by ingress: ",
        el("span", { text: dropped.map(fmtValue).join(", ") })));
    }
    const removed = Array.isArray(derived.removed_attachments) ? derived.removed_attachments : [];
    if (removed.length) {
      parts.push(el("p", { className: "note" }, "Attachments removed: ",
        el("span", { text: removed.map(fmtValue).join(", ") })));
    }
    return parts;
  }

  function renderDiff(previous, headingId) {
    if (!previous) {
      return el("p", { className: "muted", text: "First attempt: no previous job to compare." });
    }
    const entries = Object.entries(previous.diff || {});
    const heading = el("h4", { id: headingId },
      "Changes since the previous attempt ", el("code", { text: previous.job_id || "?" }),
      el("span", { className: "muted", text: previous.reason === "remediation"
        ? " (this job is a remediation of it)" : " (same idempotency key)" }),
      previous.status
        ? el("span", { className: "muted", text: ` (now ${previous.status})` }) : null);
    if (!entries.length) {
      return el("div", { className: "diff" }, heading,
        el("p", { className: "muted", text: "No differences in the compared fields." }));
    }
    return el("div", { className: "diff" }, heading,
      el("table", { className: "grid", "aria-labelledby": headingId },
        el("thead", {}, el("tr", {},
          ["Field", "Before", "After"].map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, entries.map(([field, change]) => el("tr", {},
          el("th", { scope: "row" }, el("code", { text: field })),
          el("td", { className: "before" },
            el("pre", { text: fmtValue(change && change.before) })),
          el("td", { className: "after" },
            el("pre", { text: fmtValue(change && change.after) })))))));
  }

  // The decision controls of one card; `subjectId` is what the approve/reject route names
  // (a job's id for a job approval, the approval's id for a step approval).
  function decideBlock(subjectId, n, drafts) {
    const comment = el("textarea", {
      id: `${n}-comment`, rows: 2, "data-testid": `comment-${subjectId}`, "data-job-id": subjectId,
      "aria-describedby": `${n}-comment-hint`,
    });
    comment.value = drafts.get(subjectId) || "";
    const approve = el("button", {
      type: "button", className: "approve", "data-testid": `approve-${subjectId}`,
      "aria-describedby": `${n}-title`, text: "Approve",
    });
    const reject = el("button", {
      type: "button", className: "reject", "data-testid": `reject-${subjectId}`,
      "aria-describedby": `${n}-title`, text: "Reject",
    });
    // A confirmation step: the first click arms the button, the second decides.
    const arm = (button, verb, label) => () => {
      if (button.dataset.armed === "1") {
        act(subjectId, verb, comment, [approve, reject]);
        return;
      }
      for (const b of [approve, reject]) { b.dataset.armed = ""; b.textContent = b === approve ? "Approve" : "Reject"; }
      button.dataset.armed = "1";
      button.textContent = `Confirm ${label}`;
      ui.armed = subjectId;
    };
    approve.addEventListener("click", arm(approve, "approve", "approve"));
    reject.addEventListener("click", arm(reject, "reject", "reject"));
    return el("div", { className: "decide", role: "group", "aria-label": `Decision for ${subjectId}` },
      el("label", { for: `${n}-comment`, text: "Comment" }),
      comment,
      el("p", { id: `${n}-comment-hint`, className: "hint",
        text: "Recorded with your decision in the audit log." }),
      el("div", { className: "actions" }, approve, reject));
  }

  function requesterEl(requester) {
    return el("span", {}, requester.name || requester.id || "(unknown)",
      requester.id && requester.name
        ? el("span", { className: "muted", text: ` (${requester.id})` }) : null);
  }

  function ruleEl(a, decision) {
    return el("span", {}, el("code", { text: a.rule_id || decision.rule_id || "?" }),
      el("span", { text: ` — ${a.reason || decision.reason || "(no reason given)"}` }));
  }

  function renderRecentSteps(steps, headingId) {
    if (!Array.isArray(steps) || !steps.length) {
      return el("p", { className: "muted", text: "No earlier steps in this session." });
    }
    return el("div", { className: "recent" },
      el("h4", { id: headingId, text: "Earlier steps of the session" }),
      el("table", { className: "grid", "aria-labelledby": headingId },
        el("thead", {}, el("tr", {},
          ["Step", "Target", "Decision", "Rule"].map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, steps.map((st) => el("tr", {},
          el("td", {}, el("code", { text: fmtValue(st.step_id) })),
          el("td", {}, el("code", { text: fmtValue(st.target) })),
          el("td", { className: `decision ${String(st.decision || "")}`, text: fmtValue(st.decision) }),
          el("td", {}, el("code", { text: fmtValue(st.rule_id) })))))));
  }

  // A proposed tool call that waits for a person: what it would do, and in what session.
  function renderStepApproval(a, index, drafts) {
    const approvalId = String(a.approval_id || "");
    const n = `a${index}`;
    const derived = a.derived || {};
    const decision = a.decision || {};
    const details = el("dl", { className: "facts" },
      row("Kind", el("span", { text: "tool call (step)" })),
      row("Requested by", requesterEl(a.requested_by || {})),
      row("Rule", ruleEl(a, decision)),
      row("Policy", policyEl(decision, a.policy || { snapshot: a.policy_snapshot })),
      row("Derived labels (server)", chips(derived.labels, "none")),
      row("Derived risk tags (server)", tags(derived.risk_tags, "none")),
      row("Detectors (server)", tags(derived.detected, "none")),
      row("Links to", tags(derived.hosts, "none")),
      row("Session", el("span", {}, el("code", { text: fmtValue(a.session_id) }),
        a.job_id ? el("span", { className: "muted", text: ` (job ${a.job_id})` }) : null)),
      row("Step", el("code", { text: fmtValue(a.step_id) })),
      row("Task", a.task ? el("span", { text: a.task })
        : el("span", { className: "muted", text: "(none)" })),
      row("Requested", timeEl(a.requested_at)),
      row("Expires", timeEl(a.expires_at)));
    return el("article", {
      className: "card approval step", "data-testid": `approval-${approvalId}`,
      "aria-labelledby": `${n}-title`,
    },
    el("h3", { id: `${n}-title` },
      el("span", { className: "topic", text: a.target || "(no target)" }), " ",
      el("code", { className: "job-id", text: approvalId })),
    dangerBanner(derived, approvalId),
    details,
    renderRemediations(decision.remediations),
    el("h4", { text: "Params (as the policy saw them)" }),
    el("pre", { className: "params", "data-testid": `params-${approvalId}`,
      text: JSON.stringify(a.params === undefined ? null : a.params, null, 2) }),
    renderDerived(derived),
    renderRecentSteps(a.recent_steps, `${n}-recent`),
    decideBlock(approvalId, n, drafts));
  }


  // What the classifier found that an approver must not miss: louder than any routine tag.
  const DANGERS = [
    ["untrusted_params", "Params from untrusted output: values the agent read may steer this call"],
    ["prompt_injection_suspected", "Prompt injection suspected: the request tries to override its instructions"],
    ["destructive", "Destructive command: it deletes or overwrites"],
    ["secrets_in_input", "Secrets in the input: credentials appear in the request"],
    ["network_egress", "Network egress: it sends data to a network address"],
  ];

  const list = (value) => (Array.isArray(value) ? value : []);

  // A step's findings (`derived` of a step approval) say more than a job's tags: which secret,
  // which host, which param came from untrusted output. Empty for a job.
  function dangerDetail(tag, derived) {
    if (tag === "secrets_in_input" && list(derived.secrets).length) {
      const where = Object.entries(derived.detections || {})
        .filter(([, names]) => list(names).some((n) => list(derived.secrets).includes(n)))
        .map(([path]) => path);
      return ` — ${list(derived.secrets).join(", ")}${where.length ? ` in ${where.join(", ")}` : ""}`;
    }
    if (tag === "network_egress" && list(derived.hosts).length) {
      return ` — links to ${list(derived.hosts).join(", ")}`;
    }
    if (tag === "destructive" && derived.effect === "destructive") {
      return " — the tool’s catalog entry says its effect is destructive";
    }
    if (tag === "untrusted_params") {
      const parts = [];
      if (list(derived.from_untrusted).length) {
        parts.push(`${list(derived.from_untrusted).join(", ")} occur in output an earlier step read`);
      }
      if (list(derived.untrusted_checks).length) {
        parts.push(`the deciding rule tested ${list(derived.untrusted_checks).join(", ")} with from_untrusted`);
      }
      return parts.length ? ` — ${parts.join("; ")}` : "";
    }
    return "";
  }

  function dangers(derived) {
    const tagsFound = new Set(list(derived.risk_tags));
    const labels = derived.labels || {};
    for (const [k, v] of Object.entries(labels)) {
      if (v === true || v === "true") tagsFound.add(k);
      if (k === "command_class" && v === "destructive") tagsFound.add("destructive");
    }
    if (list(derived.secrets).length) tagsFound.add("secrets_in_input");
    if (list(derived.hosts).length) tagsFound.add("network_egress");
    if (derived.effect === "destructive") tagsFound.add("destructive");
    if (list(derived.from_untrusted).length || list(derived.untrusted_checks).length) {
      tagsFound.add("untrusted_params");
    }
    return DANGERS.filter(([tag]) => tagsFound.has(tag));
  }

  function dangerBanner(derived, subjectId) {
    const found = dangers(derived || {});
    if (!found.length) return null;
    return el("div", { className: "danger", role: "alert", "data-testid": `danger-${subjectId}` },
      el("strong", { text: "Warning" }),
      el("ul", {}, found.map(([tag, text]) => el("li", { "data-tag": tag,
        text: text + dangerDetail(tag, derived || {}) }))));
  }

  // Declared is what the agent sent; the server's derived labels and tags are shown apart.
  function declaredLabels(labels, derivedLabels) {
    const out = {};
    const derivedOnes = derivedLabels || {};
    for (const [k, v] of Object.entries(labels || {})) {
      if (!(k in derivedOnes) || derivedOnes[k] !== v) out[k] = v;
    }
    return out;
  }

  function declaredTags(list, derivedList) {
    const derivedSet = new Set(Array.isArray(derivedList) ? derivedList : []);
    return (Array.isArray(list) ? list : []).filter((t) => !derivedSet.has(t));
  }

  // The bundle that decided: the server names it for a step approval (`policy`); for a job the
  // page compares the decision's snapshot with the running bundle's.
  function policyEl(decision, given) {
    const p = ui.policy || {};
    const snapshot = (given && given.snapshot) || decision.policy_snapshot || "";
    const current = given ? given.current === true : Boolean(snapshot && p.snapshot === snapshot);
    const name = given ? given.name : (current ? p.name : null);
    const serial = given ? given.serial : (current ? p.serial : null);
    return el("span", { "data-role": "policy" },
      el("span", { text: name ? `${name} ` : "" }),
      el("code", { title: snapshot, text: snapshot ? snapshot.slice(0, 12) : "(unknown)" }),
      serial !== null && serial !== undefined ? el("span", { text: ` serial ${serial}` }) : null,
      snapshot && !current && (given || p.snapshot)
        ? el("span", { className: "muted", text: " (not the bundle running now)" }) : null);
  }

  function renderRemediations(list) {
    if (!Array.isArray(list) || !list.length) return null;
    return el("div", { className: "remediations" },
      el("h4", { text: "Safer alternatives the policy offered" }),
      el("ul", {}, list.map((r) => el("li", {},
        el("code", { text: fmtValue(r.id) }), el("span", { text: ` — ${fmtValue(r.description)}` })))));
  }

  function renderApproval(a, index, drafts) {
    if (a.kind === "step") return renderStepApproval(a, index, drafts);
    const job = a.job || {};
    const jobId = String(a.job_id || job.job_id || "");
    const decision = a.decision || {};
    const derived = a.derived || {};
    const meta = job.meta || {};
    const n = `a${index}`;

    const details = el("dl", { className: "facts" },
      row("Requested by", requesterEl(a.requested_by || {})),
      row("Rule", ruleEl(a, decision)),
      row("Requested", timeEl(a.requested_at)),
      row("Expires", timeEl(a.expires_at)),
      row("Capability", meta.capability
        ? el("code", { text: fmtValue(meta.capability) })
        : el("span", { className: "muted", text: "(none)" })),
      row("Declared labels", chips(declaredLabels(job.labels, derived.labels), "none")),
      row("Declared risk tags", tags(declaredTags(meta.risk_tags, derived.risk_tags), "none")),
      row("Derived labels (server)", chips(derived.labels, "none")),
      row("Derived risk tags (server)", tags(derived.risk_tags, "none")),
      row("Policy", policyEl(decision)),
      row("Single use", el("span", { text: "an approval lets this job run once, until it expires" })));

    return el("article", {
      className: "card approval", "data-testid": `approval-${jobId}`,
      "aria-labelledby": `${n}-title`,
    },
    el("h3", { id: `${n}-title` },
      el("span", { className: "topic", text: job.topic || "(no topic)" }), " ",
      el("code", { className: "job-id", text: jobId })),
    dangerBanner(derived, jobId),
    details,
    renderRemediations(decision.remediations),
    el("h4", { text: "Prompt" }),
    el("pre", { className: "prompt", text: fmtValue(job.prompt) }),
    renderDerived(derived),
    renderDiff(a.previous, `${n}-diff`),
    decideBlock(jobId, n, drafts));
  }

  async function act(jobId, verb, commentBox, buttons) {
    for (const b of buttons) b.disabled = true;
    const label = verb === "approve" ? "Approved" : "Rejected";
    say(`${verb === "approve" ? "Approving" : "Rejecting"} ${jobId}…`, "info");
    try {
      const data = await api("POST", `/approvals/${encodeURIComponent(jobId)}/${verb}`,
        { comment: commentBox.value });
      const state = data.job_status || (data.job && data.job.status) || data.status || "";
      commentBox.value = "";
      say(`${label} ${jobId}${state ? `: ${state}` : ""}`, "ok");
    } catch (err) {
      if (err.status === 401) {
        signedOutView(`Signed out: ${err.message}`, "error");
        return;
      }
      say(`Could not ${verb} ${jobId}: ${err.message}`, "error");
      for (const b of buttons) b.disabled = false;
      // The job is still waiting: keep the keyboard user on it after the refresh.
      await loadQueue({ announce: false, refocus: true, focusJob: jobId });
      return;
    }
    await loadQueue({ announce: false, refocus: true });
  }

  // ---- start ------------------------------------------------------------------------------

  function init() {
    ui.status = $("status");
    ui.session = $("session");
    ui.whoami = $("whoami");
    ui.signin = $("signin");
    ui.form = $("login-form");
    ui.keyInput = $("login-key");
    ui.queue = $("queue");
    ui.queueTitle = $("queue-title");
    ui.count = $("queue-count");
    ui.empty = $("queue-empty");
    ui.list = $("queue-list");
    ui.history = $("history");
    ui.historyTable = $("history-table");
    ui.historyRows = $("history-rows");
    ui.historyEmpty = $("history-empty");

    ui.form.addEventListener("submit", onSignIn);
    $("signout").addEventListener("click", onSignOut);
    $("refresh").addEventListener("click", () => loadQueue({ announce: true }));

    if (key()) startSession();
    else ui.keyInput.focus();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
