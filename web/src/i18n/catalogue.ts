// Every string the dashboard shows, in English and Spanish. Screens never hold text of their
// own: they call t("key"), so a missing translation is a type error, not a blank.

const en = {
  "app.title": "Advocate dashboard",
  "app.skip": "Skip to content",
  "app.language": "Language",
  "app.loading": "Loading…",
  "nav.label": "Main",
  "nav.queue": "Queue",
  "nav.invite": "Invite",
  "nav.settings": "Settings",
  "nav.signout": "Sign out",

  "enrol.title": "Set up your account",
  "enrol.intro": "You were invited to answer conversations. Choose a password, then add the sign-in code to your authenticator app.",
  "enrol.password": "Password (at least 12 characters)",
  "enrol.confirm": "Repeat the password",
  "enrol.submit": "Create my account",
  "enrol.mismatch": "The two passwords are not the same.",
  "enrol.short": "The password needs at least 12 characters.",
  "enrol.invalid": "This invitation link does not work any more. Ask your supervisor for a new one.",
  "enrol.done.title": "Add the sign-in code to your authenticator app",
  "enrol.done.intro": "Scan the code with an authenticator app, or type the secret below. It is shown only now.",
  "enrol.qr": "QR code with your sign-in secret",
  "enrol.secret": "Secret",
  "enrol.continue": "Continue to sign in",
  "enrol.missing": "This page needs an invitation link. Ask your supervisor for one.",

  "signin.title": "Sign in",
  "signin.org": "Organisation code",
  "signin.handle": "Your handle",
  "signin.password": "Password",
  "signin.totp": "6-digit code from your authenticator app",
  "signin.submit": "Sign in",
  "signin.failed": "Those details did not work. Check them and use a fresh code.",
  "signin.slow": "Too many attempts. Wait a moment and try again.",

  "duty.on": "On duty",
  "duty.off": "Off duty",
  "duty.label": "Your status",
  "duty.go_on": "Go on duty",
  "duty.go_off": "Go off duty",
  "duty.hint.off": "You are off duty: new conversations are not offered to you.",
  "duty.hint.on": "You are on duty: waiting conversations appear here.",

  "queue.title": "Waiting",
  "queue.mine": "Your conversations",
  "queue.empty": "Nobody is waiting right now.",
  "queue.mine.empty": "You have no conversations yet.",
  "queue.position": "Position {n}",
  "queue.urgent": "Urgent",
  "queue.language": "Language: {lang}",
  "queue.language.none": "Language not given",
  "queue.waiting.hours": "Waiting about {n} h",
  "queue.waiting.recent": "Waiting less than an hour",
  "queue.claim": "Claim",
  "queue.claimed": "Claimed. The conversation opens here once this browser has its encryption keys.",
  "queue.taken": "Someone else claimed it first.",
  "queue.assigned": "Assigned to you",
  "queue.updated": "Updated {time}",
  "queue.refresh": "Refresh",

  "invite.title": "Invite a member",
  "invite.handle": "Handle (letters, digits, . _ -)",
  "invite.role": "Role",
  "invite.role.advocate": "Advocate",
  "invite.role.supervisor": "Supervisor",
  "invite.submit": "Create invitation",
  "invite.link": "Invitation link for {handle}",
  "invite.once": "This link is shown only once and works once. Send it to {handle} over a channel you trust.",
  "invite.copy": "Copy link",
  "invite.copied": "Copied.",
  "invite.taken": "That handle is already in use.",

  "settings.title": "Organisation settings",
  "settings.ooh": "Message for survivors when nobody is on duty",
  "settings.envelope_ttl": "Keep undelivered messages for (hours)",
  "settings.idle_ttl": "Delete idle conversations after (days)",
  "settings.purge": "Delete a conversation as soon as it is closed",
  "settings.save": "Save settings",
  "settings.saved": "Settings saved.",
  "settings.invalid": "A value is outside what this server allows.",

  "error.generic": "Something went wrong. Try again.",
  "error.network": "The server cannot be reached. Check the connection and try again.",
  "error.forbidden": "Your role does not allow this.",
  "error.expired": "Your session ended. Sign in again.",
} as const;

export type Key = keyof typeof en;

const es: Record<Key, string> = {
  "app.title": "Panel de acompañamiento",
  "app.skip": "Ir al contenido",
  "app.language": "Idioma",
  "app.loading": "Cargando…",
  "nav.label": "Principal",
  "nav.queue": "Cola",
  "nav.invite": "Invitar",
  "nav.settings": "Ajustes",
  "nav.signout": "Cerrar sesión",

  "enrol.title": "Configura tu cuenta",
  "enrol.intro": "Te invitaron a responder conversaciones. Elige una contraseña y añade el código de acceso a tu app de autenticación.",
  "enrol.password": "Contraseña (al menos 12 caracteres)",
  "enrol.confirm": "Repite la contraseña",
  "enrol.submit": "Crear mi cuenta",
  "enrol.mismatch": "Las dos contraseñas no coinciden.",
  "enrol.short": "La contraseña necesita al menos 12 caracteres.",
  "enrol.invalid": "Este enlace de invitación ya no funciona. Pide uno nuevo a tu supervisora.",
  "enrol.done.title": "Añade el código de acceso a tu app de autenticación",
  "enrol.done.intro": "Escanea el código con una app de autenticación o escribe el secreto. Solo se muestra ahora.",
  "enrol.qr": "Código QR con tu secreto de acceso",
  "enrol.secret": "Secreto",
  "enrol.continue": "Continuar para entrar",
  "enrol.missing": "Esta página necesita un enlace de invitación. Pide uno a tu supervisora.",

  "signin.title": "Entrar",
  "signin.org": "Código de la organización",
  "signin.handle": "Tu usuario",
  "signin.password": "Contraseña",
  "signin.totp": "Código de 6 dígitos de tu app de autenticación",
  "signin.submit": "Entrar",
  "signin.failed": "Esos datos no funcionaron. Revísalos y usa un código nuevo.",
  "signin.slow": "Demasiados intentos. Espera un momento y vuelve a intentarlo.",

  "duty.on": "De guardia",
  "duty.off": "Fuera de guardia",
  "duty.label": "Tu estado",
  "duty.go_on": "Empezar guardia",
  "duty.go_off": "Terminar guardia",
  "duty.hint.off": "Estás fuera de guardia: no se te ofrecen conversaciones nuevas.",
  "duty.hint.on": "Estás de guardia: las conversaciones en espera aparecen aquí.",

  "queue.title": "En espera",
  "queue.mine": "Tus conversaciones",
  "queue.empty": "Ahora mismo no espera nadie.",
  "queue.mine.empty": "Todavía no tienes conversaciones.",
  "queue.position": "Posición {n}",
  "queue.urgent": "Urgente",
  "queue.language": "Idioma: {lang}",
  "queue.language.none": "Idioma no indicado",
  "queue.waiting.hours": "Esperando unas {n} h",
  "queue.waiting.recent": "Esperando menos de una hora",
  "queue.claim": "Atender",
  "queue.claimed": "Asignada. La conversación se abre aquí cuando este navegador tenga sus claves de cifrado.",
  "queue.taken": "Otra persona la atendió primero.",
  "queue.assigned": "Asignada a ti",
  "queue.updated": "Actualizado {time}",
  "queue.refresh": "Actualizar",

  "invite.title": "Invitar a una persona",
  "invite.handle": "Usuario (letras, dígitos, . _ -)",
  "invite.role": "Rol",
  "invite.role.advocate": "Acompañante",
  "invite.role.supervisor": "Supervisora",
  "invite.submit": "Crear invitación",
  "invite.link": "Enlace de invitación para {handle}",
  "invite.once": "Este enlace se muestra una sola vez y funciona una vez. Envíalo a {handle} por un canal de confianza.",
  "invite.copy": "Copiar enlace",
  "invite.copied": "Copiado.",
  "invite.taken": "Ese usuario ya existe.",

  "settings.title": "Ajustes de la organización",
  "settings.ooh": "Mensaje para supervivientes cuando no hay nadie de guardia",
  "settings.envelope_ttl": "Guardar mensajes no entregados durante (horas)",
  "settings.idle_ttl": "Borrar conversaciones inactivas tras (días)",
  "settings.purge": "Borrar una conversación en cuanto se cierra",
  "settings.save": "Guardar ajustes",
  "settings.saved": "Ajustes guardados.",
  "settings.invalid": "Un valor está fuera de lo que permite este servidor.",

  "error.generic": "Algo salió mal. Inténtalo de nuevo.",
  "error.network": "No se puede contactar con el servidor. Revisa la conexión e inténtalo de nuevo.",
  "error.forbidden": "Tu rol no permite esto.",
  "error.expired": "Tu sesión terminó. Vuelve a entrar.",
};

export type Lang = "en" | "es";
export const LANGUAGES: readonly { code: Lang; name: string }[] = [
  { code: "en", name: "English" },
  { code: "es", name: "Español" },
];
const catalogues: Record<Lang, Record<Key, string>> = { en, es };

const STORAGE_KEY = "dashboard.lang";

function initial(): Lang {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (saved === "en" || saved === "es") return saved;
  return navigator.language.toLowerCase().startsWith("es") ? "es" : "en";
}

let current: Lang = initial();

export function lang(): Lang {
  return current;
}

export function setLang(l: Lang): void {
  current = l;
  localStorage.setItem(STORAGE_KEY, l);
  document.documentElement.lang = l;
}

/** The string for `key` in the current language, with `{name}` placeholders filled in. */
export function t(key: Key, params: Record<string, string | number> = {}): string {
  return catalogues[current][key].replace(/\{(\w+)\}/g, (_, name: string) =>
    String(params[name] ?? `{${name}}`),
  );
}
