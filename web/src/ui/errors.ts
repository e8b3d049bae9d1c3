import { ApiError } from "../api/client";
import { t } from "../i18n/catalogue";

/** What to tell a person about a failed request, in their language. */
export function describe(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.code === "network") return t("error.network");
    if (e.code === "forbidden") return t("error.forbidden");
    if (e.code === "unauthorized") return t("error.expired");
  }
  return t("error.generic");
}
