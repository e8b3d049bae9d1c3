import { ApiError } from "../../api/client";
import { t } from "../../i18n/catalogue";
import { signIn } from "../../session";
import { busy, field, h, message } from "../../ui/dom";
import { describe } from "../../ui/errors";

export function signInScreen(prefill: { org: string; handle: string }, done: () => void): HTMLElement {
  const org = h("input", { type: "text", autocomplete: "organization", required: true, value: prefill.org, spellcheck: "false" });
  const handle = h("input", { type: "text", autocomplete: "username", required: true, value: prefill.handle, spellcheck: "false" });
  const password = h("input", { type: "password", autocomplete: "current-password", required: true });
  const totp = h("input", {
    type: "text",
    inputmode: "numeric",
    autocomplete: "one-time-code",
    pattern: "[0-9]{6}",
    maxlength: 6,
    required: true,
  });
  const outcome = h("div");
  const form = h(
    "form",
    {},
    field(t("signin.org"), org),
    field(t("signin.handle"), handle),
    field(t("signin.password"), password),
    field(t("signin.totp"), totp),
    outcome,
    h("button", { type: "submit", class: "primary" }, t("signin.submit")),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    outcome.replaceChildren();
    try {
      await busy(form, () => signIn(org.value.trim(), handle.value.trim(), password.value, totp.value.trim()));
      done();
    } catch (e) {
      const text =
        e instanceof ApiError && e.code === "unauthorized"
          ? t("signin.failed")
          : e instanceof ApiError && e.code === "rate_limited"
            ? t("signin.slow")
            : describe(e);
      totp.value = "";
      outcome.append(message("error", text));
    }
  });
  queueMicrotask(() => (prefill.org && prefill.handle ? password : org).focus());
  return h(
    "section",
    { "aria-labelledby": "signin-title", class: "card narrow" },
    h("h2", { id: "signin-title" }, t("signin.title")),
    form,
  );
}
