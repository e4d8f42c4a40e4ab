//! The browser client, embedded in the binary so that it runs anywhere: the meeting app
//! (`web/`) and the client SDK it is built on (`sdk/js/src`), each file at its own path.

use axum::http::header;
use axum::routing::get;
use axum::Router;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// (path, content type, body) of every file the app loads.
const ASSETS: &[(&str, &str, &str)] = &[
    ("/", HTML, include_str!("../../web/index.html")),
    ("/style.css", CSS, include_str!("../../web/style.css")),
    ("/app.js", JS, include_str!("../../web/app.js")),
    ("/chat.js", JS, include_str!("../../web/chat.js")),
    ("/devices.js", JS, include_str!("../../web/devices.js")),
    ("/layout.js", JS, include_str!("../../web/layout.js")),
    ("/people.js", JS, include_str!("../../web/people.js")),
    ("/client.js", JS, include_str!("../../sdk/js/src/client.js")),
    (
        "/quality.js",
        JS,
        include_str!("../../sdk/js/src/quality.js"),
    ),
];

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let favicon = get(|| async { axum::http::StatusCode::NO_CONTENT });
    ASSETS.iter().fold(
        Router::new().route("/favicon.ico", favicon),
        |router, &(path, mime, body)| {
            router.route(
                path,
                get(move || async move {
                    (
                        [
                            (header::CONTENT_TYPE, mime),
                            (header::CACHE_CONTROL, "no-cache"),
                        ],
                        body,
                    )
                }),
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::ASSETS;

    /// The paths a page or module loads: `src="/x"`, `href="/x"`, `from './x.js'`.
    fn references(body: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (open, close) in [("src=\"/", '"'), ("href=\"/", '"'), ("from './", '\'')] {
            for part in body.split(open).skip(1) {
                if let Some(end) = part.find(close) {
                    out.push(format!("/{}", &part[..end]));
                }
            }
        }
        out
    }

    #[test]
    fn every_file_the_app_loads_is_served() {
        for (path, _, body) in ASSETS {
            for r in references(body) {
                assert!(
                    ASSETS.iter().any(|(p, _, _)| *p == r),
                    "{path} loads {r}, which the server does not serve"
                );
            }
        }
        // The check sees the imports at all.
        let app = ASSETS.iter().find(|(p, _, _)| *p == "/app.js").unwrap().2;
        assert!(references(app).contains(&"/client.js".to_string()));
    }
}
