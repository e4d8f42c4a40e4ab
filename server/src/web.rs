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
