// A minimal DOM for the page's script: elements by id with handlers, fetch and confirm stubbed.
const fs = require("fs");
const script = fs.readFileSync(process.argv[2], "utf8");
const els = {};
const calls = [];
let confirmAnswer = false;
function el(id) {
  if (!els[id]) {
    els[id] = { id, value: "", innerHTML: "", textContent: "", hidden: false, disabled: false,
      className: "", dataset: {}, files: [], handlers: {},
      classList: { add() {}, remove() {} },
      addEventListener(type, fn) { this.handlers[type] = fn; } };
  }
  return els[id];
}
global.document = { getElementById: el };
global.localStorage = { getItem: () => null, setItem() {}, removeItem() {} };
global.Headers = class { constructor() { this.h = {}; } set(k, v) { this.h[k] = v; } };
global.FormData = class { append() {} };
global.confirm = (msg) => { calls.push(["confirm", msg]); return confirmAnswer; };
global.alert = (msg) => calls.push(["alert", msg]);
global.fetch = async (path, opts = {}) => {
  calls.push(["fetch", opts.method || "GET", path]);
  const body = path === "/v1/collections" ? { data: [] } : { error: { message: "x" } };
  const status = path === "/v1/collections" ? 200 : 404;
  return { ok: status < 300, status, statusText: "", json: async () => body };
};
const tick = () => new Promise((r) => setTimeout(r, 20));
(async () => {
  eval(script);
  await tick();
  const out = { emptyDocs: el("docs").innerHTML };
  const key = (k) => { let prevented = false;
    el("question").handlers.keydown({ key: "Enter", shiftKey: k, isComposing: false,
      preventDefault() { prevented = true; } }); return prevented; };
  el("question").value = "When does the ferry leave?";
  calls.length = 0;
  out.shiftEnterPrevented = key(true);
  await tick();
  out.shiftEnterFetches = calls.filter((c) => c[0] === "fetch").length;
  out.enterPrevented = key(false);
  await tick();
  out.enterFetches = calls.filter((c) => c[0] === "fetch").map((c) => c[2]);
  calls.length = 0;
  el("collection").value = "docs";
  const button = { dataset: { id: "ab".repeat(16), source: "a.txt" } };
  await el("docs").handlers.click({ target: button });
  out.refused = calls.map((c) => c[0] + " " + (c[2] || c[1]));
  calls.length = 0; confirmAnswer = true;
  await el("docs").handlers.click({ target: button });
  out.confirmed = calls.map((c) => c[0] + " " + (c[1] === "DELETE" ? "DELETE " + c[2] : (c[2] || c[1])));
  console.log(JSON.stringify(out));
})();
