// A tiny element builder: the dashboard never assigns HTML strings (no innerHTML), so no
// text from the server or the URL can become markup.

type Attrs = Record<string, string | boolean | number | EventListener | undefined>;
type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") {
      el.addEventListener(name.replace(/^on/, ""), value);
    } else if (value === true) {
      el.setAttribute(name, "");
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, ...children);
  return el;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    parent.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
  }
}

let fieldSeq = 0;

/** A labelled form field; `input` gets an id the label points at. */
export function field(label: string, input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement): HTMLElement {
  fieldSeq += 1;
  input.id ||= `f${fieldSeq}`;
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input);
}

/** A live region for a form's outcome: errors are alerts, successes are status messages. */
export function message(kind: "error" | "ok", text: string): HTMLElement {
  return h("p", { class: `msg msg-${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

/** Disable a form's controls while `work` runs, then re-enable them. */
export async function busy<T>(form: HTMLFormElement, work: () => Promise<T>): Promise<T> {
  const controls = Array.from(form.elements) as (HTMLInputElement | HTMLButtonElement)[];
  form.setAttribute("aria-busy", "true");
  controls.forEach((c) => (c.disabled = true));
  try {
    return await work();
  } finally {
    form.removeAttribute("aria-busy");
    controls.forEach((c) => (c.disabled = false));
  }
}
