//! The advocate dashboard's static files, built from `web/` into `web/dist/` and embedded in
//! the binary, served at `<route_prefix>/<web_path>/`.
//!
//! The HTML shell is `no-store` (it is small and names the current hashed bundles); files
//! under `assets/` have content hashes in their names and are cached for a year as
//! immutable. Every answer carries a strict Content-Security-Policy: scripts, styles and
//! connections only from this origin, WebAssembly allowed, no inline script, no framing. A
//! path that names no embedded file, or tries to leave the folder, gets the same static
//! "not found" page as any other unknown path, and so does any method but `GET` and `HEAD`.

use crate::app::AppState;
use crate::http::middleware::static_not_found;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::any;

#[derive(rust_embed::Embed)]
#[folder = "../web/dist/"]
struct Dist;

/// The policy for the dashboard. `'wasm-unsafe-eval'` lets the page compile the
/// WebAssembly crypto package and nothing else; there is no `'unsafe-inline'` anywhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
style-src 'self'; img-src 'self'; font-src 'self'; connect-src 'self'; object-src 'none'; \
base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Routes for the dashboard under `/{web_path}`; none when `web_path` is empty.
pub fn router(web_path: &str) -> Router<AppState> {
    if web_path.is_empty() {
        return Router::new();
    }
    let root = format!("/{web_path}/");
    // Relative, so the browser resolves it against the prefixed URL it asked for.
    let slash = format!("{web_path}/");
    Router::new()
        .route(
            &format!("/{web_path}"),
            any(move |method: Method| async move {
                if is_read(&method) {
                    Redirect::permanent(&slash).into_response()
                } else {
                    static_not_found().await
                }
            }),
        )
        .route(
            &root,
            any(|method: Method| serve(method, "index.html".to_owned())),
        )
        .route(
            &format!("/{web_path}/{{*file}}"),
            any(|method: Method, Path(file): Path<String>| serve(method, file)),
        )
}

fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// A relative path inside the folder: no empty, `.` or `..` segment, no backslash.
fn safe(file: &str) -> bool {
    !file.is_empty()
        && !file.contains('\\')
        && file
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

async fn serve(method: Method, file: String) -> Response {
    if !is_read(&method) || !safe(&file) {
        return static_not_found().await;
    }
    let Some(content) = Dist::get(&file) else {
        return static_not_found().await;
    };
    let mime = content.metadata.mimetype().to_owned();
    let cache = if file.starts_with("assets/") {
        IMMUTABLE
    } else {
        "no-store"
    };
    let mut response = content.data.into_owned().into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&mime) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::safe;

    #[test]
    fn paths_that_could_leave_the_folder_are_not_safe() {
        for bad in [
            "",
            "../x",
            "a/../../x",
            "./x",
            "a//b",
            "a\\..\\b",
            "/etc/passwd",
            "..",
        ] {
            assert!(!safe(bad), "{bad:?}");
        }
        for good in ["index.html", "assets/app-ABC123.js", "a.b/c"] {
            assert!(safe(good), "{good:?}");
        }
    }
}
