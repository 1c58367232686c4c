// The Lua editor: CodeMirror 5 (a classic script that installs
// window.CodeMirror) with its Lua mode. A compile error is shown at its
// line: a marker in the gutter, the line tinted, and the message under it.
import { html, useEffect, useLayoutEffect, useRef } from "../lib/html.mjs";

export function Editor({ value, onChange, onSave, error, readOnly = false, minHeight = 420, docKey, visible = true }) {
  const host = useRef();
  const cm = useRef(null);
  const marks = useRef({ line: -1, widget: null });
  const handlers = useRef({});
  handlers.current = { onChange, onSave };

  // Made before the browser paints, so the page never shows without it.
  useLayoutEffect(() => {
    const CodeMirror = window.CodeMirror;
    const save = () => handlers.current.onSave?.();
    const editor = CodeMirror(host.current, {
      value: value || "",
      mode: "lua",
      lineNumbers: true,
      indentUnit: 2,
      tabSize: 2,
      indentWithTabs: false,
      matchBrackets: true,
      autoCloseBrackets: true,
      readOnly,
      viewportMargin: Infinity,
      gutters: ["pc-error-gutter", "CodeMirror-linenumbers"],
      extraKeys: {
        "Ctrl-S": save,
        "Cmd-S": save,
        "Ctrl-/": "toggleComment",
        "Cmd-/": "toggleComment",
        Tab: (c) => (c.somethingSelected() ? c.indentSelection("add") : c.replaceSelection("  ")),
        "Shift-Tab": (c) => c.indentSelection("subtract"),
      },
    });
    editor.getWrapperElement().style.setProperty("--editor-min", `${minHeight}px`);
    editor.on("changes", () => handlers.current.onChange?.(editor.getValue()));
    cm.current = editor;
    return () => {
      cm.current = null;
      host.current.innerHTML = "";
    };
  }, []);

  // A new document (another function, another version) replaces the text;
  // the editor's own edits arrive back as value and are left alone.
  useEffect(() => {
    const editor = cm.current;
    if (editor && editor.getValue() !== (value || "")) {
      editor.setValue(value || "");
      editor.clearHistory();
    }
  }, [docKey]);

  useEffect(() => {
    cm.current?.setOption("readOnly", readOnly);
  }, [readOnly]);

  // CodeMirror measures itself; after being hidden it must measure again.
  useEffect(() => {
    if (visible) cm.current?.refresh();
  }, [visible]);

  useEffect(() => {
    const editor = cm.current;
    if (!editor) return;
    editor.operation(() => {
      const m = marks.current;
      if (m.line >= 0) {
        editor.removeLineClass(m.line, "background", "pc-error-line");
        editor.setGutterMarker(m.line, "pc-error-gutter", null);
      }
      m.widget?.clear();
      m.line = -1;
      m.widget = null;
      if (!error || !error.line) return;
      const line = Math.min(Math.max(error.line - 1, 0), editor.lineCount() - 1);
      editor.addLineClass(line, "background", "pc-error-line");
      const marker = document.createElement("span");
      marker.className = "pc-error-marker";
      marker.title = error.message;
      marker.textContent = "●";
      editor.setGutterMarker(line, "pc-error-gutter", marker);
      const note = document.createElement("div");
      note.className = "pc-error-widget";
      note.setAttribute("data-line", String(error.line));
      note.textContent = `Line ${error.line}: ${error.message}`;
      m.widget = editor.addLineWidget(line, note, { coverGutter: false, noHScroll: true });
      m.line = line;
    });
  }, [error?.line, error?.message]);

  return html`<div class="editor" ref=${host}></div>`;
}

/**
 * syntaxError reads the line and message out of a 422 from PUT
 * /v1/functions/{name}: the API puts the line in errors[].value at location
 * body.source, with the message "line N: message" (a source without
 * handle has a message and no line).
 */
export function syntaxError(err) {
  if (!err || err.status !== 422) return null;
  const at = (err.errors || []).find((e) => e.location === "body.source");
  const m = /line (\d+): (.*)$/s.exec(at?.message || "");
  if (!at && !m) return null;
  const line = Number(at?.value) || Number(m?.[1]) || 1;
  let message = m ? m[2] : at.message;
  message = message.replace(/^\[string "[^"]*"\]:\d+:\s*/, "");
  return { line, message };
}
