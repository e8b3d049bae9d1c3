// Enrolment from an invitation link: `<dashboard>/#enrol=TOKEN&org=CODE&handle=NAME`. The
// token travels in the URL fragment, which browsers never send to a server, so it reaches
// no access log; the dashboard removes it from the address bar and history at once.

import { encode } from "uqr";
import { api, ApiError, call } from "../../api/client";
import { t } from "../../i18n/catalogue";
import { busy, field, h, message } from "../../ui/dom";
import { describe } from "../../ui/errors";

export interface Invitation {
  token: string;
  org: string;
  handle: string;
}

/** Read an invitation from the fragment, if there is one, and drop it from the URL. */
export function takeInvitation(): Invitation | null {
  const hash = window.location.hash.replace(/^#/, "");
  if (!hash.startsWith("enrol=")) return null;
  const params = new URLSearchParams(hash);
  history.replaceState(null, "", window.location.pathname + window.location.search);
  return {
    token: params.get("enrol") ?? "",
    org: params.get("org") ?? "",
    handle: params.get("handle") ?? "",
  };
}

export function enrolScreen(invitation: Invitation, done: (org: string, handle: string) => void): HTMLElement {
  const section = h("section", { "aria-labelledby": "enrol-title", class: "card narrow" });
  const password = h("input", { type: "password", autocomplete: "new-password", required: true, minlength: 12 });
  const confirm = h("input", { type: "password", autocomplete: "new-password", required: true, minlength: 12 });
  const outcome = h("div");
  const form = h(
    "form",
    {},
    field(t("enrol.password"), password),
    field(t("enrol.confirm"), confirm),
    outcome,
    h("button", { type: "submit", class: "primary" }, t("enrol.submit")),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    outcome.replaceChildren();
    if ([...password.value].length < 12) return outcome.append(message("error", t("enrol.short")));
    if (password.value !== confirm.value) return outcome.append(message("error", t("enrol.mismatch")));
    try {
      const enrolled = await busy(form, () =>
        call(api.POST("/v1/auth/enroll", { body: { token: invitation.token, password: password.value } })),
      );
      section.replaceChildren(...totpStep(enrolled.totp_uri, () => done(invitation.org, invitation.handle)));
      section.querySelector("h2")?.focus();
    } catch (e) {
      const text = e instanceof ApiError && e.code === "unauthorized" ? t("enrol.invalid") : describe(e);
      outcome.append(message("error", text));
    }
  });
  section.append(
    h("h2", { id: "enrol-title", tabindex: "-1" }, t("enrol.title")),
    h("p", {}, t("enrol.intro")),
    invitation.token ? form : message("error", t("enrol.missing")),
  );
  return section;
}

function totpStep(uri: string, next: () => void): Node[] {
  const secret = new URL(uri).searchParams.get("secret") ?? "";
  return [
    h("h2", { id: "enrol-title", tabindex: "-1" }, t("enrol.done.title")),
    h("p", {}, t("enrol.done.intro")),
    qrCanvas(uri, t("enrol.qr")),
    h("p", { class: "secret-label" }, t("enrol.secret")),
    h("p", { class: "secret", "data-testid": "totp-secret" }, secret.replace(/(.{4})/g, "$1 ").trim()),
    h("button", { type: "button", class: "primary", onclick: next }, t("enrol.continue")),
  ];
}

/** Draw a QR code on a canvas (an image to assistive technology, with a label). */
function qrCanvas(text: string, label: string): HTMLCanvasElement {
  const { data, size } = encode(text, { ecc: "M", border: 4 });
  const scale = 6;
  const canvas = h("canvas", { role: "img", "aria-label": label, class: "qr", width: size * scale, height: size * scale });
  const ctx = canvas.getContext("2d");
  if (ctx) {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = "#000";
    data.forEach((row, y) =>
      row.forEach((dark, x) => {
        if (dark) ctx.fillRect(x * scale, y * scale, scale, scale);
      }),
    );
  }
  return canvas;
}
