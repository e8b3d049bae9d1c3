// Supervisors invite members. The invitation link carries the one-time token in its fragment
// and is shown once: leaving the screen forgets it.

import { api, ApiError, call, type Role } from "../../api/client";
import { t } from "../../i18n/catalogue";
import { current } from "../../session";
import { busy, field, h, message } from "../../ui/dom";
import { describe } from "../../ui/errors";

export function inviteScreen(): HTMLElement {
  const handle = h("input", { type: "text", required: true, pattern: "[A-Za-z0-9._\\-]{1,64}", spellcheck: "false" });
  const role = h(
    "select",
    {},
    h("option", { value: "advocate" }, t("invite.role.advocate")),
    h("option", { value: "supervisor" }, t("invite.role.supervisor")),
  );
  const outcome = h("div");
  const form = h(
    "form",
    {},
    field(t("invite.handle"), handle),
    field(t("invite.role"), role),
    h("button", { type: "submit", class: "primary" }, t("invite.submit")),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    outcome.replaceChildren();
    const who = handle.value.trim();
    try {
      const invited = await busy(form, () =>
        call(api.POST("/v1/org/invites", { body: { handle: who, role: role.value as Role } })),
      );
      const fragment = new URLSearchParams({ enrol: invited.token, org: current()?.org ?? "", handle: who });
      const link = `${window.location.origin}${window.location.pathname}#${fragment}`;
      const linkId = "invite-link";
      const copied = h("span", { role: "status", class: "hint" });
      outcome.append(
        h(
          "div",
          { class: "once" },
          h("label", { for: linkId }, t("invite.link", { handle: who })),
          h("input", { id: linkId, type: "text", readonly: true, value: link, class: "link", "data-testid": "invite-link" }),
          h("p", { class: "hint" }, t("invite.once", { handle: who })),
          h(
            "button",
            {
              type: "button",
              class: "secondary",
              onclick: async () => {
                await navigator.clipboard?.writeText(link).catch(() => undefined);
                copied.textContent = t("invite.copied");
              },
            },
            t("invite.copy"),
          ),
          copied,
        ),
      );
      form.reset();
    } catch (e) {
      outcome.append(message("error", e instanceof ApiError && e.code === "conflict" ? t("invite.taken") : describe(e)));
    }
  });
  return h(
    "section",
    { "aria-labelledby": "invite-title", class: "card narrow" },
    h("h2", { id: "invite-title" }, t("invite.title")),
    form,
    outcome,
  );
}
