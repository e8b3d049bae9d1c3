// The advocate dashboard: the shell (header, navigation, language, sign out) and a router
// over the URL fragment, so the server serves one HTML file and never sees a screen's name.

import "./styles.css";
import { LANGUAGES, lang, setLang, t, type Lang } from "./i18n/catalogue";
import { enrolScreen, takeInvitation, type Invitation } from "./screens/enrol/enrol";
import { inviteScreen } from "./screens/invite/invite";
import { queueScreen } from "./screens/queue/queue";
import { settingsScreen } from "./screens/settings/settings";
import { signInScreen } from "./screens/signin/signin";
import { current, signOut } from "./session";
import { h } from "./ui/dom";

type Route = "queue" | "invite" | "settings";

const root = document.getElementById("app") as HTMLElement;
let invitation: Invitation | null = takeInvitation();
let prefill = { org: invitation?.org ?? "", handle: invitation?.handle ?? "" };
let stopScreen: () => void = () => undefined;

function route(): Route {
  const r = window.location.hash.replace(/^#\//, "");
  const supervisor = current()?.role === "supervisor";
  if ((r === "invite" || r === "settings") && supervisor) return r;
  return "queue";
}

function languagePicker(): HTMLElement {
  const select = h("select", { id: "lang", class: "lang" });
  for (const l of LANGUAGES) {
    const option = h("option", { value: l.code, lang: l.code }, l.name);
    option.selected = l.code === lang();
    select.append(option);
  }
  select.addEventListener("change", () => {
    setLang(select.value as Lang);
    render();
  });
  return h("div", { class: "lang-picker" }, h("label", { for: "lang" }, t("app.language")), select);
}

function header(): HTMLElement {
  const s = current();
  const nav = s
    ? h(
        "nav",
        { "aria-label": t("nav.label") },
        h(
          "ul",
          {},
          ...(["queue", "invite", "settings"] as const)
            .filter((r) => r === "queue" || s.role === "supervisor")
            .map((r) =>
              h("li", {}, h("a", { href: `#/${r}`, "aria-current": route() === r ? "page" : undefined }, t(`nav.${r}`))),
            ),
        ),
      )
    : null;
  const who = s ? h("span", { class: "who" }, `${s.handle} · ${s.org}`) : null;
  const out = s
    ? h(
        "button",
        {
          type: "button",
          class: "secondary",
          onclick: async () => {
            await signOut();
            render();
          },
        },
        t("nav.signout"),
      )
    : null;
  return h("header", { class: "top" }, h("h1", {}, t("app.title")), nav, h("div", { class: "tools" }, who, languagePicker(), out));
}

function render(): void {
  stopScreen();
  stopScreen = () => undefined;
  document.title = t("app.title");
  document.documentElement.lang = lang();
  const main = h("main", { id: "main", tabindex: "-1" });
  if (invitation) {
    const inv = invitation;
    main.append(
      enrolScreen(inv, (org, handle) => {
        invitation = null;
        prefill = { org, handle };
        render();
      }),
    );
  } else if (!current()) {
    main.append(signInScreen(prefill, () => {
      window.location.hash = "#/queue";
      render();
    }));
  } else {
    switch (route()) {
      case "invite":
        main.append(inviteScreen());
        break;
      case "settings":
        main.append(settingsScreen());
        break;
      case "queue": {
        const screen = queueScreen();
        stopScreen = screen.stop;
        main.append(screen.element);
      }
    }
  }
  const skip = h("a", { class: "skip", href: "#main-content" }, t("app.skip"));
  skip.addEventListener("click", (ev) => {
    ev.preventDefault();
    main.focus();
  });
  root.replaceChildren(skip, header(), main);
}

window.addEventListener("hashchange", () => {
  if (window.location.hash.startsWith("#enrol=")) invitation = takeInvitation();
  render();
});
render();
