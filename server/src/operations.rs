//! The operator's routes: `/metrics` (Prometheus) and `/debug/stats` (the workers'
//! counters). They say how loaded the node is and what it serves, so they are not for the
//! public: either on their own listen address (`metrics_http`), or on the HTTP address
//! behind a bearer token (`metrics_token`), or — with neither — only when the HTTP address
//! is loopback (development).

use std::sync::Arc;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::plane::WorkerPool;
use crate::secret::Secret;

/// Who may read the operator's routes on the HTTP address.
#[derive(Clone)]
pub enum Access {
    /// Anyone (a loopback HTTP address: nobody else can reach it).
    Open,
    /// Requests with `Authorization: Bearer <token>`.
    Token(Secret),
    /// Nobody (they are on `metrics_http`, or no token is set on a reachable address).
    Closed,
}

impl Access {
    /// The rule for the HTTP address.
    pub fn for_http(token: Option<&Secret>, http_is_loopback: bool) -> Self {
        match token {
            Some(t) => Access::Token(t.clone()),
            None if http_is_loopback => Access::Open,
            None => Access::Closed,
        }
    }

    fn allows(&self, req: &Request) -> bool {
        match self {
            Access::Open => true,
            Access::Closed => false,
            Access::Token(t) => req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|given| {
                    verify_slices_are_equal(given.trim().as_bytes(), t.expose().as_bytes()).is_ok()
                }),
        }
    }
}

/// `/metrics` and `/debug/stats`.
pub fn router(prometheus: PrometheusHandle, pool: Arc<WorkerPool>) -> Router {
    Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || std::future::ready(prometheus.render())),
        )
        .route(
            "/debug/stats",
            axum::routing::get(move || {
                let p = pool.clone();
                async move {
                    axum::Json(
                        p.workers
                            .iter()
                            .map(|w| *w.stats.lock())
                            .collect::<Vec<_>>(),
                    )
                }
            }),
        )
}

/// The routes behind `access` (for the HTTP address).
pub fn guarded(routes: Router, access: Access) -> Router {
    routes.layer(axum::middleware::from_fn_with_state(access, guard))
}

async fn guard(State(access): State<Access>, req: Request, next: Next) -> Response {
    if access.allows(&req) {
        return next.run(req).await;
    }
    let body = serde_json::json!({
        "code": "unauthorized",
        "message": "the operator's routes need metrics_token (Authorization: Bearer) here, or are on metrics_http",
    });
    (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
}
