// The advocate's desk: duty status, the waiting queue (urgent first, as the server orders
// it) with language, waiting time and position, claiming, and the member's own
// conversations. Refreshed every few seconds while shown; live updates over the stream come
// with this browser's device registration.

import { api, ApiError, call, type Conversation } from "../../api/client";
import { lang, t } from "../../i18n/catalogue";
import { current, setDuty } from "../../session";
import { h, message } from "../../ui/dom";
import { describe } from "../../ui/errors";

const REFRESH_MS = 5000;

export function queueScreen(): { element: HTMLElement; stop: () => void } {
  const status = h("div", { class: "status-line" });
  const dutyHint = h("p", { class: "hint" });
  const dutyButton = h("button", { type: "button", class: "duty", "aria-pressed": "false" });
  const waiting = h("section", { "aria-labelledby": "queue-title", "aria-live": "polite" });
  const mine = h("section", { "aria-labelledby": "mine-title" });
  const notice = h("div");
  const updated = h("p", { class: "hint" });
  let timer: number | undefined;
  let stopped = false;
  let shown = "";

  function paintDuty(): void {
    const on = current()?.onDuty ?? false;
    dutyButton.setAttribute("aria-pressed", String(on));
    dutyButton.classList.toggle("on", on);
    dutyButton.textContent = on ? t("duty.go_off") : t("duty.go_on");
    status.replaceChildren(
      h("span", { class: "label" }, `${t("duty.label")}: `),
      h("strong", { class: on ? "badge on" : "badge off" }, on ? t("duty.on") : t("duty.off")),
    );
    dutyHint.textContent = on ? t("duty.hint.on") : t("duty.hint.off");
  }

  dutyButton.addEventListener("click", async () => {
    notice.replaceChildren();
    dutyButton.disabled = true;
    try {
      await setDuty(!(current()?.onDuty ?? false));
      paintDuty();
      await refresh();
    } catch (e) {
      notice.append(message("error", describe(e)));
    } finally {
      dutyButton.disabled = false;
    }
  });

  async function claim(c: Conversation, button: HTMLButtonElement): Promise<void> {
    notice.replaceChildren();
    button.disabled = true;
    try {
      await call(api.POST("/v1/conversations/{id}/claim", { params: { path: { id: c.id } } }));
      notice.append(message("ok", t("queue.claimed")));
    } catch (e) {
      notice.append(message("error", e instanceof ApiError && e.code === "conflict" ? t("queue.taken") : describe(e)));
    }
    await refresh();
  }

  /** "Spanish" for `es` in the dashboard's language; the tag itself if the browser has no name. */
  function languageName(tag: string): string {
    try {
      return new Intl.DisplayNames([lang()], { type: "language" }).of(tag) ?? tag;
    } catch {
      return tag;
    }
  }

  function waitingText(c: Conversation): string {
    const hours = Math.floor((Date.now() / 1000 - c.opened_hour) / 3600);
    return hours >= 1 ? t("queue.waiting.hours", { n: hours }) : t("queue.waiting.recent");
  }

  function row(c: Conversation, position: number | null): HTMLElement {
    const details = h(
      "p",
      { class: "meta" },
      c.language ? t("queue.language", { lang: languageName(c.language) }) : t("queue.language.none"),
      " · ",
      waitingText(c),
    );
    const head = h(
      "p",
      { class: "head" },
      position !== null ? h("span", { class: "position" }, t("queue.position", { n: position })) : h("span", { class: "position" }, t("queue.assigned")),
      c.urgent ? h("span", { class: "badge urgent" }, t("queue.urgent")) : null,
    );
    const item = h("li", { class: c.urgent ? "item urgent" : "item" }, h("div", {}, head, details));
    if (position !== null) {
      const button = h("button", { type: "button", class: "primary" }, t("queue.claim"));
      button.setAttribute("aria-label", `${t("queue.claim")} — ${t("queue.position", { n: position })}`);
      button.addEventListener("click", () => claim(c, button));
      item.append(button);
    }
    return item;
  }

  function list(title: string, id: string, rows: HTMLElement[], empty: string): HTMLElement[] {
    return [
      h("h2", { id }, title),
      rows.length ? h("ol", { class: "list" }, ...rows) : h("p", { class: "empty" }, empty),
    ];
  }

  async function refresh(): Promise<void> {
    window.clearTimeout(timer);
    try {
      const { conversations } = await call(api.GET("/v1/conversations"));
      updated.textContent = t("queue.updated", { time: new Date().toLocaleTimeString() });
      // Repaint only on a change, so keyboard focus stays where the advocate left it.
      const key = JSON.stringify(conversations);
      if (key === shown) return schedule();
      shown = key;
      const queue = conversations.filter((c) => c.state === "waiting");
      const own = conversations.filter((c) => c.state === "assigned");
      waiting.replaceChildren(
        ...list(t("queue.title"), "queue-title", queue.map((c, i) => row(c, i + 1)), t("queue.empty")),
      );
      mine.replaceChildren(...list(t("queue.mine"), "mine-title", own.map((c) => row(c, null)), t("queue.mine.empty")));
    } catch (e) {
      shown = "";
      waiting.replaceChildren(h("h2", { id: "queue-title" }, t("queue.title")), message("error", describe(e)));
    }
    schedule();
  }

  function schedule(): void {
    if (!stopped) timer = window.setTimeout(refresh, REFRESH_MS);
  }

  paintDuty();
  waiting.append(h("h2", { id: "queue-title" }, t("queue.title")), h("p", { class: "state", "aria-busy": "true" }, t("app.loading")));
  void refresh();
  const element = h(
    "div",
    { class: "desk" },
    h("section", { class: "card duty-card", "aria-label": t("duty.label") }, status, dutyHint, dutyButton),
    notice,
    h("div", { class: "card" }, waiting, updated, h("button", { type: "button", class: "secondary", onclick: () => void refresh() }, t("queue.refresh"))),
    h("div", { class: "card" }, mine),
  );
  return {
    element,
    stop: () => {
      stopped = true;
      window.clearTimeout(timer);
    },
  };
}
