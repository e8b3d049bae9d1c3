// Supervisors change the organisation settings. Lifetimes are shown in hours and days; the
// server refuses values outside the operator's caps, and the form says so.

import { api, ApiError, call, type OrgSettings } from "../../api/client";
import { t } from "../../i18n/catalogue";
import { busy, field, h, message } from "../../ui/dom";
import { describe } from "../../ui/errors";

const HOUR = 3600;
const DAY = 24 * HOUR;

export function settingsScreen(): HTMLElement {
  const section = h(
    "section",
    { "aria-labelledby": "settings-title", class: "card narrow" },
    h("h2", { id: "settings-title" }, t("settings.title")),
  );
  const loading = h("p", { class: "state", "aria-busy": "true" }, t("app.loading"));
  section.append(loading);
  call(api.GET("/v1/org/settings"))
    .then((s) => loading.replaceWith(form(s)))
    .catch((e: unknown) => loading.replaceWith(message("error", describe(e))));
  return section;
}

function form(s: OrgSettings): HTMLFormElement {
  const ooh = h("textarea", { rows: 3, maxlength: 2000 });
  ooh.value = s.out_of_hours_message ?? "";
  const envelope = h("input", { type: "number", min: 1, step: 1, required: true, value: Math.round((s.envelope_ttl_secs ?? 0) / HOUR) });
  const idle = h("input", { type: "number", min: 1, step: 1, required: true, value: Math.round((s.idle_ttl_secs ?? 0) / DAY) });
  const purge = h("input", { type: "checkbox", id: "purge" });
  purge.checked = s.purge_on_close ?? true;
  const outcome = h("div");
  const f = h(
    "form",
    {},
    field(t("settings.ooh"), ooh),
    field(t("settings.envelope_ttl"), envelope),
    field(t("settings.idle_ttl"), idle),
    h("div", { class: "check" }, purge, h("label", { for: "purge" }, t("settings.purge"))),
    outcome,
    h("button", { type: "submit", class: "primary" }, t("settings.save")),
  );
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    outcome.replaceChildren();
    try {
      await busy(f, () =>
        call(
          api.PUT("/v1/org/settings", {
            body: {
              out_of_hours_message: ooh.value,
              envelope_ttl_secs: Number(envelope.value) * HOUR,
              idle_ttl_secs: Number(idle.value) * DAY,
              purge_on_close: purge.checked,
            },
          }),
        ),
      );
      outcome.append(message("ok", t("settings.saved")));
    } catch (e) {
      outcome.append(message("error", e instanceof ApiError && e.code === "bad_request" ? t("settings.invalid") : describe(e)));
    }
  });
  return f;
}
