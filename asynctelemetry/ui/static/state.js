// The page's state in its URL (the history API): every view keeps what it shows here, so that a
// reload, back/forward, a link opened in a new tab or sent to a colleague shows the same view.
//
//   UrlState.register(name, fallback)  declare a key (e.g. "model", "" ; "window", "1h"); a key
//                                      equal to its fallback (or empty) is left out of the URL.
//   UrlState.get(name)                 its value now: the URL's, else the fallback (null if none)
//   UrlState.all()                     {name: value} of every key in the URL now
//   UrlState.href(changes)             the address of the page with `changes` ({name: value|null};
//                                      null removes) applied to the state now: for real links
//   UrlState.set(changes, {replace})   go there (pushState; replaceState with replace: true);
//                                      a no-op when nothing changes; tells the listeners
//   UrlState.listen(fn)                fn(changedNames, how) after every set ("set") and every
//                                      back/forward ("pop"); changedNames: a Set of key names
//   UrlState.link(anchor, changes)     make `anchor` a link to href(changes): a plain click goes
//                                      there in this page (set), a middle/ctrl/cmd/shift click or
//                                      "copy link" uses its real href (kept fresh on hover/focus)
//
// Keys of the page (app.js): window, since, until, model, provider, session, status (the API's
// own parameters, same names), stack, user, agent (traces), call, trace (the open dialog),
// sort, order, q, after (the calls table: its order, search, page cursor); conversation (the
// open session view, session.js). Other views register theirs.
// Unknown keys in the URL are kept as they are (a view that registers later reads them).
"use strict";

window.UrlState = (function () {
  const fallbacks = new Map();
  const listeners = [];
  let seen = snapshot();

  function snapshot() {
    const out = {};
    for (const [k, v] of new URLSearchParams(window.location.search)) out[k] = v;
    return out;
  }

  function register(name, fallback) {
    fallbacks.set(name, fallback == null ? null : String(fallback));
  }

  function get(name) {
    const value = new URLSearchParams(window.location.search).get(name);
    if (value != null && value !== "") return value;
    return fallbacks.has(name) ? fallbacks.get(name) : null;
  }

  function href(changes) {
    const params = new URLSearchParams(window.location.search);
    params.delete("token");  // a login token never travels in a link
    for (const [name, value] of Object.entries(changes || {})) {
      if (value == null || value === "" || String(value) === fallbacks.get(name)) params.delete(name);
      else params.set(name, String(value));
    }
    const text = params.toString();
    return window.location.pathname + (text ? "?" + text : "");
  }

  function changed(before, after) {
    const names = new Set();
    for (const k of Object.keys(before)) if (before[k] !== after[k]) names.add(k);
    for (const k of Object.keys(after)) if (before[k] !== after[k]) names.add(k);
    return names;
  }

  function tell(how) {
    const now = snapshot();
    const names = changed(seen, now);
    seen = now;
    if (!names.size) return;
    for (const fn of listeners) fn(names, how);
  }

  function set(changes, options) {
    const target = href(changes);
    if (target === window.location.pathname + window.location.search) return;
    if (options && options.replace) window.history.replaceState(null, "", target);
    else window.history.pushState(null, "", target);
    tell("set");
  }

  function listen(fn) { listeners.push(fn); }

  function link(anchor, changes) {
    anchor.href = href(changes);
    const fresh = function () { anchor.href = href(changes); };
    anchor.addEventListener("mouseenter", fresh);
    anchor.addEventListener("focus", fresh);
    anchor.addEventListener("click", function (event) {
      event.stopPropagation();  // a link inside a clickable row: the link wins
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      event.preventDefault();
      set(changes);
    });
    return anchor;
  }

  window.addEventListener("popstate", function () { tell("pop"); });

  return { register: register, get: get, all: snapshot, href: href, set: set, listen: listen, link: link };
})();
